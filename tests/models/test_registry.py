"""The registry, the model contract (docs/CONTRACTS.md) and the paper-size parameter counts."""

import pytest
import torch

from ignn_lab.models import build, list_models, register_model
from ignn_lab.models.config import EDSRConfig, IGNNConfig, model_config_from_dict

NAMES = ["edsr", "edsr-baseline", "edsr-lite", "ignn", "ignn-lite", "nonlocal", "nonlocal-lite"]


def test_list_models():
    assert set(NAMES) <= set(list_models())


def test_duplicate_and_unknown_names():
    with pytest.raises(ValueError, match="already registered"):
        register_model("edsr")(lambda scale: None)
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        build("nope", 2)
    with pytest.raises(ValueError, match="unknown IGNN option"):
        build("ignn-lite", 2, n_feat=3)
    with pytest.raises(ValueError, match="unknown EDSR option"):
        build("edsr-lite", 2, k=3)
    with pytest.raises(ValueError, match="scale"):
        build("edsr-lite", 5)


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", ["edsr-lite", "ignn-lite", "nonlocal-lite", "edsr-baseline"])
def test_contract(name, scale):
    torch.manual_seed(0)
    model = build(name, scale, n_resblocks=2).eval()
    lr = torch.rand(2, 3, 21, 26)
    with torch.no_grad():
        sr = model(lr)
    assert sr.shape == (2, 3, 21 * scale, 26 * scale) and sr.dtype == torch.float32
    assert sr.is_contiguous() and torch.isfinite(sr).all()
    assert model.scale == scale
    assert model.needs_son == (name == "ignn-lite")
    assert model_config_from_dict(model.config.to_dict()) == model.config
    if name == "ignn-lite":
        assert model.graph_scale == (3 if scale == 3 else 2)


def test_son_default_is_the_kits_bicubic():
    from ignn_lab.data.degrade import make_son

    model = build("ignn-lite", 3, n_resblocks=2).eval()
    lr = torch.rand(1, 3, 23, 31)
    with torch.no_grad():
        a = model(lr)
        b = model(lr, make_son(lr, 3))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="son must be"):
        model(lr, torch.rand(1, 3, 8, 10))


def test_input_checks():
    model = build("edsr-lite", 2, n_resblocks=1)
    with pytest.raises(ValueError, match="B×3×H×W"):
        model(torch.rand(3, 8, 8))
    with pytest.raises(TypeError, match="floating"):
        model(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


def _trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("scale,expected", [(2, 47_113_477), (3, 50_063_877), (4, 49_473_797)])
def test_paper_size_ignn_parameter_counts(scale, expected):
    with torch.device("meta"):
        model = build("ignn", scale)
    assert _trainable(model) == expected
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    assert frozen == 38_756  # spec §8: the VGG head + 3 MeanShift convs


def test_paper_size_edsr_parameter_count():
    with torch.device("meta"):
        model = build("edsr", 2)
    assert _trainable(model) == 40_729_603
    assert isinstance(model.config, EDSRConfig) and model.config.n_resblocks == 32


def test_paper_defaults():
    cfg = build("ignn", 2, n_feats=8, n_resblocks=2).config
    assert isinstance(cfg, IGNNConfig)
    g = cfg.graph
    got = (g.k, g.patch_size, g.stride, g.window, g.embedding, g.adapn, g.edge_weighting, g.cross_scale,
           g.hr_skip, g.agg_channels, g.edge_channels)
    assert got == (5, 3, 2, 30, "vgg-random", True, "ecn", True, True, None, 64)
    assert cfg.res_scale == 0.1 and cfg.position == 1


def test_too_small_for_the_graph():
    model = build("ignn-lite", 2, n_resblocks=1)
    with pytest.raises(ValueError, match=r"son \(3×3, g=2\) has 1 patch\(es\).*at least 3 \(k=3\)"):
        model(torch.rand(1, 3, 6, 7))
    assert model(torch.rand(1, 3, 8, 10)).shape == (1, 3, 16, 20)
