"""``make demo``: the shipped checkpoints of each scale beside bicubic on the embedded images."""

from __future__ import annotations

import json

import pytest
import torch

from ignn_lab.engine.evaluate import evaluate
from ignn_lab.lab import tasks
from ignn_lab.models import build, pretrained, save


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
