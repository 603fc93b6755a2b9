"""``make demo``: the shipped checkpoints of each scale beside bicubic on the embedded images."""

from __future__ import annotations

import json

import pytest
import torch

from ignn_lab.engine.evaluate import evaluate
from ignn_lab.lab import tasks
from ignn_lab.models import build, load, pretrained, save


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A weights folder with a small (untrained) ×2 EDSR-lite and ×4 IGNN-lite under shipped names."""
    monkeypatch.setattr(pretrained, "weights_dir", lambda: tmp_path / "weights")
    torch.manual_seed(0)
    save(build("edsr-lite", 2, n_resblocks=1, n_feats=8), tmp_path / "weights" / "edsr-lite-x2.pt")
    save(build("ignn-lite", 4, n_resblocks=2, n_feats=8), tmp_path / "weights" / "ignn-lite-x4.pt")
    return tmp_path


def test_demo_models_are_bicubic_then_the_shipped_checkpoints_of_that_scale(shipped):
    assert tasks.demo_models(2) == ["bicubic", "edsr-lite-x2"]
    assert tasks.demo_models(4) == ["bicubic", "ignn-lite-x4"]
    assert tasks.demo_models(3) == ["bicubic"]


def test_demo_scores_every_model_as_evaluate_does(shipped):
    out = shipped / "demo"
    res = tasks.demo(out, scales=(2,), explore=False, progress=False)
    table = (out / "table.md").read_text()
    assert "| bicubic | skimage | ×2 |" in table and "| edsr-lite-x2 | skimage | ×2 |" in table
    direct = evaluate("edsr-lite-x2", ["skimage"], [2], progress=False)["summary"][0]
    ours = res["results"]["edsr-lite-x2 x2"]["summary"][0]
    assert ours["psnr"] == direct["psnr"] and ours["ssim"] == direct["ssim"]
    record = json.loads((out / "demo.json").read_text())
    assert record["models"] == ["bicubic ×2", "edsr-lite-x2 ×2"]
    assert len(record["crops"]) == 10 and all((out / "crops" / p.split("/")[-1]).is_file() for p in record["crops"])


def test_ship_checkpoint_keeps_the_provenance_and_refuses_a_checkpoint_over_the_limit(shipped):
    run = shipped / "run"
    torch.manual_seed(1)
    model = build("edsr-lite", 2, n_resblocks=1, n_feats=8)
    save(model, run / "best.pt", provenance={"command": "ignn-lab train --config x", "val_psnr": 30.5})
    sessions = [{"command": "ignn-lab train --config x", "from_step": 0, "steps": 10, "git_commit": "abc"}]
    path = tasks.ship_checkpoint(run, "edsr-lite-x2b", sessions=sessions)
    assert path == shipped / "weights" / "edsr-lite-x2b.pt"
    assert pretrained.pretrained_path("edsr-lite-x2b") == path
    shipped_model = load(path)
    assert shipped_model.provenance["shipped_as"] == "edsr-lite-x2b"
    assert shipped_model.provenance["val_psnr"] == 30.5 and shipped_model.provenance["sessions"] == sessions
    for k, v in model.state_dict().items():
        assert torch.equal(shipped_model.state_dict()[k], v)
    with pytest.raises(ValueError, match="stay under 0.001 MB"):
        tasks.ship_checkpoint(run, "too-big", max_mb=0.001)
    assert not (shipped / "weights" / "too-big.pt").exists()
