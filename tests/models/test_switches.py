"""Every switch of the IGNN / GraphAggregation config changes the output, and the RQ variants train."""

import numpy as np
import pytest
import torch
from skimage import data

from ignn_lab.models import build

BASE = dict(n_feats=8, n_resblocks=2, k=3, window=4, embedding="pixel", edge_channels=8)


def _image(h, w, top=100, left=180):
    img = data.astronaut()[top: top + h, left: left + w].astype(np.float32) / 255
    return torch.from_numpy(img).permute(2, 0, 1)[None]


def _outputs(scale, base, change, lr, *, warmup=None, name="ignn-lite"):
    """Outputs of the base model and of a model with ``change``, sharing every weight they both have."""
    torch.manual_seed(0)
    a = build(name, scale, **base).eval()
    b = build(name, scale, **{**base, **change}).eval()
    theirs = b.state_dict()
    shared = {k: v for k, v in a.state_dict().items() if k in theirs and theirs[k].shape == v.shape}
    b.load_state_dict(shared, strict=False)
    with torch.no_grad():
        if warmup is not None:
            a(warmup), b(warmup)
        return a(lr), b(lr)


CHANGES = [
    {"adapn": False},
    {"edge_weighting": "uniform"},
    {"edge_weighting": "distance"},
    {"graph_position": 0},
    {"k": 2},
    {"window": None},
    {"patch_size": 4},
    {"stride": 3},
    {"embedding": "vgg-random"},
    {"embedding": "features"},
    {"cross_scale": False},
    {"hr_skip": False},
    {"agg_channels": None},
    {"edge_channels": 4},
    {"aggregation": "nonlocal"},
    {"aggregation": "nonlocal", "nonlocal_region": 8},
]


@pytest.mark.parametrize("change", CHANGES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_switch_changes_output(change):
    lr = _image(30, 34)
    a, b = _outputs(2, BASE, change, lr)
    assert a.shape == b.shape == (1, 3, 60, 68)
    assert torch.isfinite(b).all()
    assert (a - b).abs().max().item() > 1e-5


def test_window_centering_changes_output_at_x3():
    lr = _image(44, 59)  # son grid 7×9 (FIXTURES x3_windowed geometry)
    base = {**BASE, "window": 5, "window_centering": "released"}
    a, b = _outputs(3, base, {"window_centering": "corrected"}, lr)
    assert (a - b).abs().max().item() > 1e-5


def test_window_centering_is_inert_at_x2():
    lr = _image(30, 34)
    a, b = _outputs(2, {**BASE, "window_centering": "released"}, {"window_centering": "corrected"}, lr)
    assert torch.equal(a, b)


def test_window_mode_changes_output_after_a_small_call():
    lr, small = _image(30, 34), _image(12, 12)  # the small call's son grid (3×3) fits the window
    a, b = _outputs(2, {**BASE, "window_mode": "per-call"}, {"window_mode": "sticky"}, lr, warmup=small)
    assert (a - b).abs().max().item() > 1e-5


@pytest.mark.parametrize("change",
                         [{}, {"cross_scale": False}, {"adapn": False}, {"edge_weighting": "uniform"}],
                         ids=["default", "cross_scale=False", "adapn=False", "uniform"])
def test_variants_train(change):
    torch.manual_seed(0)
    hr = _image(48, 48, 200, 200)
    lr = torch.nn.functional.interpolate(hr, scale_factor=0.5, mode="bicubic", align_corners=False)
    lr = lr.clamp(0, 1)
    model = build("ignn-lite", 2, n_feats=16, n_resblocks=2, **change).train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    losses = []
    for _ in range(12):
        opt.zero_grad()
        loss = torch.nn.functional.l1_loss(model(lr), hr)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses))
    assert min(losses[-3:]) < 0.7 * losses[0]
    grads = [p.grad for n, p in model.named_parameters() if n.startswith("gcn.") and p.requires_grad]
    assert grads and all(g is not None for g in grads)


def test_vgg19_embedding_needs_local_weights():
    from ignn_lab.graph.embed import vgg19_weights_path

    try:
        vgg19_weights_path()
    except FileNotFoundError:
        with pytest.raises(FileNotFoundError, match="ImageNet VGG19 weights not found"):
            build("ignn-lite", 2, embedding="vgg19")
        return
    a, b = _outputs(2, {**BASE, "embedding": "vgg-random"}, {"embedding": "vgg19"}, _image(30, 34))
    assert (a - b).abs().max().item() > 1e-5
