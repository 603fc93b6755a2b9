"""The one resolver: every kind of model argument, and options that do not apply refused with a reason."""

import pytest
import torch

from ignn_lab.engine.options import PredictOptions
from ignn_lab.engine.predictors import get_predictor
from ignn_lab.models import save
from tests.support import tiny_model


@pytest.fixture()
def weights(tmp_path, monkeypatch):
    """A shipped-checkpoints folder holding one ×2 checkpoint, ``lite-test-x2``."""
    import ignn_lab.models.pretrained as pretrained

    folder = tmp_path / "weights"
    save(tiny_model("ignn-lite", 2), folder / "lite-test-x2.pt", provenance={"note": "test"})
    monkeypatch.setattr(pretrained, "weights_dir", lambda: folder)
    return folder


def _lr():
    return torch.randint(0, 256, (3, 20, 22), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def test_every_kind_of_model_argument(weights, tmp_path):
    lr = _lr()
    shipped = get_predictor("lite-test-x2", 2)
    by_path = get_predictor(weights / "lite-test-x2.pt", 2)
    module = get_predictor(tiny_model("ignn-lite", 2), 2)
    assert torch.equal(shipped(lr), by_path(lr)) and torch.equal(shipped(lr), module(lr))
    assert shipped.source["kind"] == "shipped checkpoint" and shipped.source["name"] == "lite-test-x2"
    assert by_path.source == {"kind": "checkpoint", "path": str((weights / "lite-test-x2.pt").resolve())}
    with pytest.warns(UserWarning, match="random weights"):
        assert get_predictor("edsr-lite", 2, n_resblocks=1).source == {"kind": "registry", "name": "edsr-lite"}
    assert get_predictor("bicubic", 3).source == {"kind": "bicubic"}
    assert get_predictor("GraphAgg*", 2).name == "graphagg-star"
    with pytest.raises(ValueError, match="lite-test-x2 is a ×2 network, but scale=3"):
        get_predictor("lite-test-x2", 3)
    with pytest.raises(ValueError, match="'nope' is neither an existing checkpoint file nor a shipped or registered "
                                         "model; known: bicubic, graphagg-star, lite-test-x2, edsr"):
        get_predictor("nope", 2)
    with pytest.raises(FileNotFoundError, match="no checkpoint file at"):
        get_predictor(tmp_path / "missing.pt", 2)
    with pytest.raises(ValueError, match="is a folder"):
        get_predictor(tmp_path, 2)


def test_options_per_kind(weights):
    net = get_predictor("lite-test-x2", 2, tile=96, self_ensemble=True, window=None)
    assert net.tile == 96 and net.self_ensemble and net.model.config.graph.window is None and net.name.endswith("+")
    assert net.settings["tile"] == 96 and net.settings["window"] is None
    with pytest.raises(ValueError, match=r"k=3 does not apply to bicubic \(bicubic is the protocol's fixed "
                                         r"baseline\); bicubic takes no options"):
        get_predictor("bicubic", 2, k=3)
    with pytest.raises(ValueError, match="unknown IGNN option.*'weighting'"):
        get_predictor("lite-test-x2", 2, weighting="distance")  # graphagg-star's switch; an IGNN has edge_weighting
    with pytest.raises(ValueError, match="edsr-lite: .*window"):
        get_predictor("edsr-lite", 2, window=8)
    with pytest.raises(ValueError, match="not both"):
        get_predictor("bicubic", 2, PredictOptions(), tile=3)


def test_models_command_lists_shipped_checkpoints(weights, capsys):
    from ignn_lab.cli import main

    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [ln.split()[0] for ln in lines]
    assert names[:3] == ["bicubic", "graphagg-star", "lite-test-x2"] and "ignn-lite" in names
    assert "shipped checkpoint (lite-test-x2.pt)" in lines[2]
