"""The kit's own checkpoints: save → load gives the same network; clear errors for other files."""

import pytest
import torch

from ignn_lab.models import build, load, save
from ignn_lab.models.checkpoint import CheckpointError


@pytest.mark.parametrize("name,overrides", [("edsr-lite", {"n_resblocks": 2}),
                                            ("ignn-lite", {"n_resblocks": 2, "window_mode": "sticky"}),
                                            ("ignn", {"n_feats": 8, "n_resblocks": 2}),
                                            ("nonlocal-lite", {"n_resblocks": 2})])
def test_round_trip(tmp_path, name, overrides):
    torch.manual_seed(1)
    model = build(name, 3, **overrides).eval()
    path = save(model, tmp_path / "sub" / "m.pt", provenance={"steps": 10, "data": ["T91"], "note": None})
    assert path.is_file() and [p.name for p in path.parent.iterdir()] == ["m.pt"]  # no temp file left
    again = load(path)
    assert type(again) is type(model) and again.config == model.config and not again.training
    assert again.provenance["steps"] == 10 and again.provenance["data"] == ["T91"]
    assert {"ignn_lab_version", "torch_version", "saved_at"} <= set(again.provenance)
    for (ka, va), (kb, vb) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    lr = torch.rand(1, 3, 17, 20)
    with torch.no_grad():
        assert torch.equal(model(lr), again(lr))


def test_provenance_must_be_plain(tmp_path):
    model = build("edsr-lite", 2, n_resblocks=1)
    with pytest.raises(TypeError, match="provenance.when"):
        save(model, tmp_path / "m.pt", provenance={"when": object()})
    with pytest.raises(TypeError, match="kit model"):
        save(torch.nn.Conv2d(1, 1, 1), tmp_path / "m.pt")


def test_not_a_kit_checkpoint(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="not an ignn-lab checkpoint"):
        load(junk)
    released = tmp_path / "released.pth"
    torch.save({"net_state_dict": {"module.head.0.weight": torch.zeros(1)}}, released)
    with pytest.raises(CheckpointError, match="load_official"):
        load(released)
    plain = tmp_path / "plain.pt"
    torch.save({"a": torch.zeros(1)}, plain)
    with pytest.raises(CheckpointError, match="no format"):
        load(plain)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "absent.pt")


def test_weights_that_do_not_fit(tmp_path):
    path = save(build("edsr-lite", 2, n_resblocks=1), tmp_path / "m.pt")
    obj = torch.load(path, weights_only=True)
    obj["config"]["n_resblocks"] = 2
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match="missing .*body.2"):
        load(path)
