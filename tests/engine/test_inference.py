"""Inference engine: tiled == untiled (toy and registry models), self-ensemble, grey/odd/tiny images, loading.

References are direct, untiled ``model(lr, son)`` calls and plain loops over the 8 flips/transposes.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from ignn_lab.data.degrade import make_son
from ignn_lab.engine.inference import ModelPredictor, model_predictor, self_ensemble
from ignn_lab.engine.tiling import receptive_radius, tile_rules, tile_spans
from ignn_lab.models.checkpoint import CheckpointError


def _image(h: int, w: int, c: int = 3, seed: int = 0) -> torch.Tensor:
    """A smooth-plus-texture uint8 test image (C×H×W): no large flat areas, so kNN has no ties."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                            indexing="ij")
    base = torch.stack([torch.sin(yy / (5 + 2 * i)) * torch.cos(xx / (7 + i)) for i in range(c)])
    noise = torch.rand((c, h, w), generator=g, dtype=torch.float64)
    return ((0.5 + 0.35 * base + 0.15 * noise).clamp(0, 1) * 255).round().to(torch.uint8)


def _float(lr_u8: torch.Tensor) -> torch.Tensor:
    return lr_u8[None].to(torch.float32) / 255.0


class ToyLocal(nn.Module):
    """``depth`` 3×3 convs then PixelShuffle: receptive radius ``depth`` LR pixels, no son."""

    needs_son = False

    def __init__(self, scale: int, depth: int = 3, ch: int = 8, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        chans = [3] + [ch] * (depth - 1) + [3 * scale * scale]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(chans[:-1], chans[1:]))
        self.scale = scale

    def forward(self, lr, son=None):
        x = lr
        for i, c in enumerate(self.convs):
            x = c(x)
            if i < len(self.convs) - 1:
                x = torch.tanh(x)
        return F.pixel_shuffle(x, self.scale) + F.interpolate(lr, scale_factor=self.scale, mode="nearest")


class ToySon(nn.Module):
    """Reads the son at LR pixel ⌊y/g⌋ and a stride-2 patch grid, so a misplaced son or grid shows."""

    needs_son = True

    def __init__(self, scale: int, seed: int = 0):
        super().__init__()
        self.scale, self.g = scale, (3 if scale == 3 else 2)
        torch.manual_seed(seed)
        self.local = ToyLocal(scale, depth=2, seed=seed)
        self.son_conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, lr, son=None):
        if son is None:
            son = make_son(lr, self.g)
        h, w = lr.shape[-2:]
        assert son.shape[-2:] == (h // self.g, w // self.g)
        s = F.interpolate(self.son_conv(son), scale_factor=self.g, mode="nearest")
        s = F.pad(s, (0, w - s.shape[-1], 0, h - s.shape[-2]))
        grid = F.avg_pool2d(lr, 2, stride=2, ceil_mode=True)  # stride-2 patch grid anchored at 0
        grid = F.interpolate(grid, scale_factor=2, mode="nearest")[..., :h, :w]
        x = lr + 0.5 * torch.tanh(s) + 0.5 * grid
        return self.local(x)


class ToySymmetric(nn.Module):
    """Flip/transpose-equivariant: a D4-symmetric 3×3 kernel per channel, then nearest upsampling."""

    needs_son = False

    def __init__(self, scale: int):
        super().__init__()
        self.scale = scale
        k = torch.tensor([[0.05, 0.1, 0.05], [0.1, 0.4, 0.1], [0.05, 0.1, 0.05]])
        self.register_buffer("k", k.expand(3, 1, 3, 3).clone())

    def forward(self, lr, son=None):
        y = torch.tanh(F.conv2d(lr, self.k, padding=1, groups=3) * 1.7) ** 3
        return F.interpolate(y, scale_factor=self.scale, mode="nearest")


def _untiled(model, lr01):
    with torch.inference_mode():
        son = make_son(lr01, model.g) if getattr(model, "needs_son", False) else None
        return model(lr01, son)


# ---------------------------------------------------------------- tiled == untiled


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("size", [(97, 83), (64, 130)])
def test_toy_tiled_equals_untiled(scale, size):
    lr = _image(*size, seed=scale)
    model = ToySon(scale).eval()
    ref = _untiled(model, _float(lr))
    pred = model_predictor(model, scale, tile=40, overlap=8, progress=False)
    out = pred.upscale_float(_float(lr))
    assert pred.last_tiles > 1
    assert out.shape == ref.shape
    assert (out - ref).abs().max().item() <= 1e-5


def test_misaligned_tiles_would_differ():
    """The check above can fail: the same tiling with unaligned starts (align=1) breaks the son/grid placement."""
    lr = _image(97, 83, seed=1)
    model = ToySon(2).eval()
    ref = _untiled(model, _float(lr))
    pred = model_predictor(model, 2, tile=41, overlap=8, progress=False)
    pred.rules = dataclasses.replace(pred.rules, align=1)
    out = pred.upscale_float(_float(lr))
    assert (out - ref).abs().max().item() > 1e-3


def test_local_model_default_overlap_is_exact():
    """Without a graph, the default overlap covers the receptive radius (here 3), so tiling is exact."""
    lr = _image(150, 71)
    model = ToyLocal(2, depth=3).eval()
    assert receptive_radius(model, 2) == 3
    pred = model_predictor(model, 2, tile=32, progress=False)
    assert pred.overlap == 3
    out = pred.upscale_float(_float(lr))
    assert pred.last_tiles > 1
    assert (out - _untiled(model, _float(lr))).abs().max().item() <= 1e-5


def test_small_overlap_differs_only_near_seams():
    lr = _image(120, 120, seed=3)
    model = ToyLocal(2, depth=14).eval()  # radius 14 > the context the tiles get (at least 2, here 6)
    ref = _untiled(model, _float(lr))
    pred = model_predictor(model, 2, tile=48, overlap=2, progress=False)
    out = pred.upscale_float(_float(lr))
    diff = (out - ref).abs().amax(dim=(0, 1))  # sH×sW
    assert diff.max().item() > 1e-4  # the seams show
    far = torch.ones(120, dtype=torch.bool)  # LR rows/cols whose 14-pixel neighbourhood lies inside their tile
    for sp in tile_spans(120, 48, 2, 1):
        for lo, hi in ((sp.keep_start, sp.keep_stop),):
            if sp.start > 0:
                far[lo: sp.start + 14] = False
            if sp.stop < 120:
                far[sp.stop - 14: hi] = False
    assert far.sum() > 30
    mask = (far[:, None] & far[None, :]).repeat_interleave(2, 0).repeat_interleave(2, 1)
    assert diff[mask].max().item() <= 1e-5


def test_memory_budget_chooses_tiles():
    lr = _image(160, 150)
    model = ToySon(2).eval()
    alpha, beta = model_predictor(model, 2, progress=False).memory_model()
    assert beta == 0 and alpha > 3 * 4  # at least the float32 RGB input and a same-sized intermediate
    budget = alpha * 64 * 64
    pred = model_predictor(model, 2, memory_budget_gb=budget / 2**30, overlap=8, progress=False)
    side = pred.tile_side(160, 150)
    assert side == 60  # the largest multiple of 4 with (side + 4)² pixels inside the budget
    out = pred.upscale_float(_float(lr))
    assert pred.last_tiles > 1
    assert (out - _untiled(model, _float(lr))).abs().max().item() <= 1e-5
    big = model_predictor(model, 2, memory_budget_gb=8.0, progress=False)
    assert big.tile_side(160, 150) is None  # fits: untiled


# ---------------------------------------------------------------- odd, grey, tiny images


def test_grey_is_channel_mean_of_replicated_rgb():
    lr = _image(45, 37, c=1)
    model = ToySon(2).eval()
    out = model_predictor(model, 2, progress=False)(lr)
    ref = _untiled(model, _float(lr.expand(3, -1, -1)))
    expected = torch.floor(ref.mean(1)[0] * 255 + 0.5).clamp(0, 255).to(torch.uint8)
    assert out.shape == (1, 90, 74) and out.dtype == torch.uint8
    assert torch.equal(out[0], expected)


def test_image_smaller_than_a_tile_is_untiled():
    lr = _image(33, 21)
    model = ToySon(3).eval()
    pred = model_predictor(model, 3, tile=60, overlap=8, progress=False)
    out = pred(lr)
    ref = _untiled(model, _float(lr))
    assert pred.last_tiles == 1 and out.shape == (3, 99, 63)
    assert torch.equal(out, torch.floor(ref[0] * 255 + 0.5).clamp(0, 255).to(torch.uint8))


def test_tiny_image_is_edge_padded_then_cropped():
    lr = _image(5, 9)
    model = ToySon(2).eval()
    pred = model_predictor(model, 2, progress=False)
    with pytest.warns(UserWarning, match="edge-padded"):
        out = pred.upscale_float(_float(lr))
    m = pred.rules.min_side
    padded = F.pad(_float(lr), (0, m - 9, 0, m - 5), mode="replicate")
    ref = _untiled(model, padded)[..., :10, :18]
    assert out.shape == (1, 3, 10, 18)
    assert (out - ref).abs().max().item() <= 1e-6


# ---------------------------------------------------------------- self-ensemble


def test_self_ensemble_of_equivariant_model_equals_model():
    lr = _float(_image(31, 26))
    model = ToySymmetric(2).eval()
    for i, t in enumerate([lambda x: x.flip(-1), lambda x: x.flip(-2), lambda x: x.transpose(-1, -2)]):
        assert (model(t(lr)) - t(model(lr))).abs().max() < 1e-6, i  # the toy really is equivariant
    plain = model_predictor(model, 2, progress=False)
    ens = model_predictor(model, 2, self_ensemble=True, progress=False)
    assert ens.name.endswith("+")
    assert (ens.upscale_float(lr) - plain.upscale_float(lr)).abs().max().item() <= 1e-6
    u8 = _image(31, 26)
    assert torch.equal(ens(u8), plain(u8))


def test_self_ensemble_matches_a_plain_loop():
    lr = _float(_image(23, 30))
    model = ToyLocal(2, depth=2).eval()

    def fwd(x):
        return model(x)

    ref = torch.zeros(1, 3, 46, 60)
    for k in range(4):  # rotations by k·90°, with and without a horizontal flip: the 8 symmetries
        for flip in (False, True):
            x = torch.rot90(lr, k, (-2, -1))
            x = x.flip(-1) if flip else x
            y = fwd(x)
            y = y.flip(-1) if flip else y
            ref += torch.rot90(y, -k, (-2, -1)) / 8
    with torch.inference_mode():
        out = self_ensemble(fwd, lr)
    assert (out - ref).abs().max().item() <= 1e-6
    assert (out - fwd(lr)).abs().max().item() > 1e-3  # not equivariant, so the ensemble changes the output


def test_self_ensemble_with_tiles_equals_untiled_ensemble():
    lr = _image(70, 53, seed=5)
    model = ToySon(2).eval()
    pred = model_predictor(model, 2, self_ensemble=True, tile=36, overlap=8, progress=False)
    with torch.inference_mode():
        ref = self_ensemble(lambda x: model(x, make_son(x, 2)), _float(lr))
    assert (pred.upscale_float(_float(lr)) - ref).abs().max().item() <= 1e-5


# ---------------------------------------------------------------- options and errors


def test_half_precision_is_refused_on_cpu():
    with pytest.raises(ValueError, match="CUDA"):
        model_predictor(ToyLocal(2), 2, dtype="bfloat16")
    with pytest.raises(ValueError, match="dtype must be one of"):
        model_predictor(ToyLocal(2), 2, dtype="int8")


def test_float64_predictor():
    model = ToyLocal(2)
    pred = model_predictor(model, 2, dtype="float64", progress=False)
    assert next(model.parameters()).dtype == torch.float64
    assert pred.upscale_float(_float(_image(20, 20))).dtype == torch.float64


def test_bad_inputs_and_options():
    pred = model_predictor(ToyLocal(2), 2, progress=False)
    assert isinstance(pred, ModelPredictor) and pred.parallel_safe is False
    with pytest.raises(ValueError, match="uint8 C×H×W"):
        pred(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="uint8 C×H×W"):
        pred(torch.zeros(4, 8, 8, dtype=torch.uint8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        pred([[0]])
    with pytest.raises(ValueError, match="too small"):
        model_predictor(ToySon(2), 2, tile=12, overlap=8)
    with pytest.raises(ValueError, match="scale=3"):
        model_predictor(ToyLocal(2), 3)
    with pytest.raises(ValueError, match="neither an existing checkpoint"):
        model_predictor("no-such-model", 2)
    with pytest.raises(ValueError, match="memory_budget_gb"):
        model_predictor(ToyLocal(2), 2, memory_budget_gb=-1)
    with pytest.raises(ValueError, match="window: these switches apply to registry names and checkpoints, not to "
                                         "an already built"):
        model_predictor(ToyLocal(2), 2, window=8)
    with pytest.raises(ValueError, match="'exact' is impossible"):
        model_predictor(_tiny("ignn-lite", 2, n_resblocks=1, n_feats=8, window=None), 2, overlap="exact")
    with pytest.raises(ValueError, match="overlap must be"):
        model_predictor(ToyLocal(2), 2, overlap=-1)


def test_tile_rules_for_toys():
    r = tile_rules(ToySon(3), 3)
    assert (r.graph_scale, r.align, r.exact) == (3, 12, True)
    assert r.min_side == 18 and math.gcd(r.align, 6) == 6
    assert tile_rules(ToyLocal(2), 2).align == 1


# ---------------------------------------------------------------- registry models (small bodies, small windows)


def _tiny(name: str, scale: int, **kw):
    from ignn_lab.models import build

    torch.manual_seed(0)
    return build(name, scale, **kw).eval()


def _two_tiles_per_side(pred: ModelPredictor) -> tuple[int, int, int]:
    """A tile side and an odd image size that give 2×2 tiles."""
    a = pred.rules.align
    return pred.tile, pred.tile + 2 * a + 1, pred.tile + a + 3


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_ignn_lite_tiled_equals_untiled(scale):
    """With overlap = receptive radius, the stitched output is the untiled output (window 4 fits the margin)."""
    model = _tiny("ignn-lite", scale, window=4, n_resblocks=2, n_feats=16)
    r, rules = receptive_radius(model, scale), tile_rules(model, scale)
    assert rules.exact
    tile = math.ceil((2 * r + 2 * rules.align) / rules.align) * rules.align
    pred = model_predictor(model, scale, tile=tile, overlap="exact", progress=False)
    assert pred.overlap == r
    _, h, w = _two_tiles_per_side(pred)
    lr = _float(_image(h, w, seed=scale))
    with torch.inference_mode():
        ref = model(lr)  # the model computes its own whole-image son
    out = pred.upscale_float(lr)
    assert pred.last_tiles == 4
    graph = model.gcn.last_graph  # the last tile really searched a window, not globally
    assert graph.window == 4 and min(graph.son_grid) > 4
    assert (out - ref).abs().max().item() <= 1e-5


def test_edsr_lite_default_overlap_is_exact():
    model = _tiny("edsr-lite", 2, n_resblocks=4)
    pred = model_predictor(model, 2, tile=48, progress=False)
    assert pred.overlap == receptive_radius(model, 2) == 12
    lr = _float(_image(101, 77))
    out = pred.upscale_float(lr)
    assert pred.last_tiles > 1
    with torch.inference_mode():
        assert (out - model(lr)).abs().max().item() <= 1e-5


def test_ignn_lite_small_overlap_equal_away_from_seams():
    """Overlap 8 < radius: the seams differ, and the output is equal wherever the radius stays in the tile."""
    model = _tiny("ignn-lite", 2, n_resblocks=2, n_feats=16)  # the registry's lite graph: window 8
    r = receptive_radius(model, 2)
    assert model_predictor(model, 2, progress=False).overlap == 32 < r  # the default: capped at 32
    pred = model_predictor(model, 2, tile=80, overlap=8, progress=False)
    h, w = 150, 131
    lr = _float(_image(h, w, seed=7))
    out = pred.upscale_float(lr)
    with torch.inference_mode():
        ref = model(lr)

    def far(length):
        ok = torch.zeros(length, dtype=torch.bool)
        for sp in tile_spans(length, 80, 8, pred.rules.align):
            lo = sp.keep_start if sp.start == 0 else max(sp.keep_start, sp.start + r)
            hi = sp.keep_stop if sp.stop == length else min(sp.keep_stop, sp.stop - r)
            ok[lo:max(lo, hi)] = True
        return ok.repeat_interleave(2)

    mask = far(h)[:, None] & far(w)[None, :]
    diff = (out - ref).abs().amax(dim=(0, 1))
    assert mask.sum() > 0.1 * mask.numel()
    assert diff[mask].max().item() <= 1e-5
    assert diff.max().item() > 1e-5  # the seams themselves differ: this is not the exact setting


def test_registry_name_warns_untrained():
    with pytest.warns(UserWarning, match="untrained"):
        pred = model_predictor("edsr-lite", 2, n_resblocks=1, progress=False)
    assert pred.name == "edsr-lite" and pred(_image(12, 10)).shape == (3, 24, 20)


def test_kit_checkpoint_path(tmp_path):
    from ignn_lab.models import save

    model = _tiny("ignn-lite", 2, n_resblocks=2, n_feats=16)
    path = save(model, tmp_path / "m.pt")
    lr = _image(30, 34)
    assert torch.equal(model_predictor(path, 2, progress=False)(lr), model_predictor(model, 2, progress=False)(lr))
    # a test-time switch applies to a trained checkpoint as to a registry name: same weights, window changed
    narrow = model_predictor(path, 2, window=3, progress=False)
    ref = _tiny("ignn-lite", 2, n_resblocks=2, n_feats=16, window=3)
    ref.load_state_dict(model.state_dict())
    assert narrow.model.config.graph.window == 3
    assert torch.equal(narrow(lr), model_predictor(ref, 2, progress=False)(lr))
    with pytest.raises(CheckpointError, match=f"{path}: its weights do not fit its config with \\['n_feats'\\] "
                                              "changed: shape mismatch"):
        model_predictor(path, 2, n_feats=8)
    with pytest.raises(ValueError, match="unknown IGNN option"):
        model_predictor(path, 2, windw=3)
    with pytest.raises(ValueError, match="×2 network"):
        model_predictor(path, 4)


@pytest.mark.parametrize("name", ["x2", "x4", "x3_windowed"])
def test_released_checkpoint_path_float64(name, ref_root, tmp_path):
    """A released-layout checkpoint file is detected, sized from its tensors and run in float64 through the
    engine (son computed by the engine): it reproduces the official output (FIXTURES.md)."""
    from tests.support import load_fixture

    fx = load_fixture(ref_root, name)
    path = tmp_path / "release.pth"
    torch.save(fx["checkpoint"], path)
    pred = model_predictor(path, fx["scale"], dtype="float64", window=fx["window_size"], progress=False)
    assert pred.model.config.n_feats == fx["n_feats"] and pred.model.config.n_resblocks == fx["n_resblocks"]
    out = pred.upscale_float(fx["lr"] / 255.0)
    assert (out.cpu() - fx["sr"] / 255.0).abs().max().item() <= 1e-7
    assert torch.equal(pred.model.gcn.last_graph.index, fx["idx_k"])


def test_multithreaded_windowed_search_under_inference_mode():
    """The engine runs models under torch.inference_mode; the graph's CPU kNN splits work over threads, which must
    inherit that mode (regression: in-place updates of inference tensors failed in the worker threads)."""
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model = _tiny("ignn-lite", 2, window=4, n_resblocks=1, n_feats=8)
        lr = _float(_image(96, 96, seed=11))
        out = model_predictor(model, 2, progress=False).upscale_float(lr)
        with torch.no_grad():
            ref = model(lr)
    finally:
        torch.set_num_threads(old)
    assert (out - ref).abs().max().item() <= 1e-6
