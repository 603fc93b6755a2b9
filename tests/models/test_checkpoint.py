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


class _Code:  # a pickled class: a checkpoint that holds code, not data
    pass


def _bad_files(tmp_path):
    """name → (how the file is made, what the message must say)."""
    from tests.support import tiny_model

    made = {}
    (tmp_path / "zero.pt").write_bytes(b"")
    made["zero.pt"] = "is empty (0 bytes)"
    (tmp_path / "random.pt").write_bytes(bytes(range(256)) * 8)
    made["random.pt"] = "is not a torch checkpoint"
    (tmp_path / "zeros.pt").write_bytes(b"\x00" * 10)
    made["zeros.pt"] = "is not a torch checkpoint"
    good = save(tiny_model("edsr-lite"), tmp_path / "good.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(good[: len(good) // 2])
    made["truncated.pt"] = "is a damaged torch checkpoint"
    torch.save({"a": _Code()}, tmp_path / "code.pt")
    made["code.pt"] = "holds pickled Python objects or code"
    obj = torch.load(tmp_path / "good.pt", weights_only=True)
    del obj["config"]
    torch.save(obj, tmp_path / "noconfig.pt")
    made["noconfig.pt"] = "has no model config (key 'config')"
    torch.save({"a": torch.zeros(1)}, tmp_path / "plain.pt")
    made["plain.pt"] = "is not an ignn-lab model checkpoint (it holds a dict without the format marker"
    torch.save({"net_state_dict": {"module.head.0.weight": torch.zeros(1)}}, tmp_path / "released.pth")
    made["released.pth"] = "is a released IGNN checkpoint, not an ignn-lab one: load it with "
    return made


def test_files_that_are_not_kit_checkpoints(tmp_path):
    """Fault 11: each message names the file and says what is accepted, in the kit's words (not torch's)."""
    for name, says in _bad_files(tmp_path).items():
        with pytest.raises(CheckpointError) as err:
            load(tmp_path / name)
        msg = str(err.value)
        assert msg.startswith(str(tmp_path / name)) and says in msg, msg
        assert "\n" not in msg and "weights_only` argument" not in msg and "pytorch.org" not in msg
        if name not in ("code.pt", "released.pth"):
            assert "expected a checkpoint written by ignn_lab.models.save or ignn-lab train" in msg
    with pytest.raises(FileNotFoundError, match="no checkpoint file at"):
        load(tmp_path / "absent.pt")


def test_weights_that_do_not_fit(tmp_path):
    path = save(build("edsr-lite", 2, n_resblocks=1), tmp_path / "m.pt")
    obj = torch.load(path, weights_only=True)
    obj["config"]["n_resblocks"] = 2
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match="missing .*body.2"):
        load(path)
