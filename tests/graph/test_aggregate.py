"""GraphAgg* against a plain-loop float64 implementation written from the spec (§2, §4, §5)."""

import numpy as np
import pytest
import torch

from ignn_lab.data.degrade import make_son
from ignn_lab.data.imresize import imresize
from ignn_lab.graph.aggregate import (
    crop_box,
    graphagg_details,
    graphagg_star,
    recurrence_from_graph,
    recurrence_map,
    search_graph,
)
from ignn_lab.graph.patches import patch2im

MEAN = np.array([0.485, 0.456, 0.406])


def _padded(x: np.ndarray, p: int) -> np.ndarray:
    """Zero-pad C×H×W at the bottom/right by the released rule (stride 2)."""
    C, H, W = x.shape
    out = np.zeros((C, H + (-(H - p)) % 2, W + (-(W - p)) % 2))
    out[:, :H, :W] = x
    return out


def _grid_patches(x: np.ndarray, p: int) -> np.ndarray:
    """gh×gw×C×p×p, patch (i, j) at pixel (2i, 2j) of the padded image."""
    xp = _padded(x, p)
    gh, gw = (xp.shape[1] - p) // 2 + 1, (xp.shape[2] - p) // 2 + 1
    out = np.zeros((gh, gw, x.shape[0], p, p))
    for i in range(gh):
        for j in range(gw):
            out[i, j] = xp[:, 2 * i: 2 * i + p, 2 * j: 2 * j + p]
    return out


def _embed(x: np.ndarray) -> np.ndarray:
    return (np.repeat(x, 3, 0) if x.shape[0] == 1 else x) - MEAN[:, None, None]


def _shuffle_down_hr_patches(lr: np.ndarray, s: int, p: int) -> np.ndarray:
    """Spec §5 step 1 literally: pixel-shuffle-down, patches of yd, back to s×-larger image-domain patches."""
    C, H, W = lr.shape
    h, w = H // s, W // s
    yd = np.zeros((C * s * s, h, w))
    for c in range(C):
        for sy in range(s):
            for sx in range(s):
                for Y in range(h):
                    for X in range(w):
                        yd[c * s * s + sy * s + sx, Y, X] = lr[c, s * Y + sy, s * X + sx]
    pd = _grid_patches(yd, p)
    out = np.zeros(pd.shape[:2] + (C, p * s, p * s))
    for c in range(C):
        for sy in range(s):
            for sx in range(s):
                for py in range(p):
                    for px in range(p):
                        out[:, :, c, py * s + sy, px * s + sx] = pd[:, :, c * s * s + sy * s + sx, py, px]
    return out


def _bicubic_hr_patches(lr: np.ndarray, s: int, p: int) -> np.ndarray:
    up = imresize(torch.from_numpy(lr), s).clamp(0, 1).numpy()
    C, H, W = lr.shape
    gh, gw = _grid_patches(lr, p).shape[:2]
    canvas = np.zeros((C, (gh - 1) * 2 * s + p * s, (gw - 1) * 2 * s + p * s))
    canvas[:, : s * H, : s * W] = up
    out = np.zeros((gh, gw, C, p * s, p * s))
    for i in range(gh):
        for j in range(gw):
            out[i, j] = canvas[:, 2 * s * i: 2 * s * i + p * s, 2 * s * j: 2 * s * j + p * s]
    return out


def _window(i: int, n: int, side: int, g: int) -> range:
    start = min(max(i // g - side // 2, 0), n - side)
    return range(start, start + side)


def _reference(lr, s, *, k=5, window=30, adapn=True, weighting="uniform", cross_scale=True, p=3):
    """Plain-loop GraphAgg* for one C×H×W float64 image; returns (sr, best distance per query grid cell)."""
    C, H, W = lr.shape
    qv = _grid_patches(_embed(lr), p)
    qimg = _grid_patches(lr, p)
    if cross_scale:
        son = make_son(torch.from_numpy(lr)[None], s)[0].numpy()
        sv, hr, g = _grid_patches(_embed(son), p), _shuffle_down_hr_patches(lr, s, p), s
    else:
        sv, hr, g = qv, _bicubic_hr_patches(lr, s, p), 1
    (m1, m2), (n1, n2) = qv.shape[:2], sv.shape[:2]
    glob = window is None or (window >= n1 and window >= n2)
    side = None if glob else min(window, n1, n2)
    P = p * s
    canvas = np.zeros((C, (m1 - 1) * 2 * s + P, (m2 - 1) * 2 * s + P))
    count = np.zeros_like(canvas)
    best = np.zeros((m1, m2))
    for i in range(m1):
        for j in range(m2):
            rows = range(n1) if glob else _window(i, n1, side, g)
            cols = range(n2) if glob else _window(j, n2, side, g)
            cand = sorted((float(((qv[i, j] - sv[R, Cc]) ** 2).sum()), R * n2 + Cc)
                          for R in rows for Cc in cols if cross_scale or (R, Cc) != (i, j))[:k]
            d = np.array([c[0] for c in cand])
            best[i, j] = d[0]
            if weighting == "uniform":
                wts = np.full(k, 1.0 / k)
            else:
                e = np.exp(-d / max(d.mean(), 1e-300))
                wts = e / e.sum()
            agg = np.zeros((C, P, P))
            for r, (_, n) in enumerate(cand):
                z = hr[n // n2, n % n2].copy()
                if adapn:
                    for c in range(C):
                        y = qimg[i, j, c]
                        z[c] = (z[c] - z[c].mean()) / np.sqrt(z[c].var(ddof=1) + 1e-5) * np.sqrt(
                            y.var(ddof=1) + 1e-5) + y.mean()
                agg += wts[r] * z
            canvas[:, 2 * s * i: 2 * s * i + P, 2 * s * j: 2 * s * j + P] += agg
            count[:, 2 * s * i: 2 * s * i + P, 2 * s * j: 2 * s * j + P] += 1
    sr = (canvas / count)[:, : s * H, : s * W]
    return np.clip(sr, 0, 1), best


def _rand(C, H, W, seed=0):
    return torch.rand(1, C, H, W, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


CASES = [  # scale, C, H, W, window, k, adapn, weighting, cross_scale
    (2, 3, 25, 31, None, 5, True, "uniform", True),
    (2, 3, 24, 30, 4, 5, True, "distance", True),
    (3, 3, 28, 35, 3, 4, False, "uniform", True),
    (3, 1, 27, 30, None, 5, True, "uniform", True),
    (4, 3, 33, 40, 3, 3, True, "distance", True),
    (2, 3, 17, 20, None, 5, True, "uniform", False),
    (3, 3, 16, 19, 5, 3, False, "distance", False),
]


@pytest.mark.parametrize("s,C,H,W,window,k,adapn,weighting,cross", CASES)
def test_graphagg_star_matches_plain_loop(s, C, H, W, window, k, adapn, weighting, cross):
    lr = _rand(C, H, W, seed=s * 100 + H)
    sr = graphagg_star(lr, s, k=k, window=window, adapn=adapn, weighting=weighting, cross_scale=cross)
    ref, best = _reference(lr[0].numpy(), s, k=k, window=window, adapn=adapn, weighting=weighting,
                           cross_scale=cross)
    assert sr.shape == (1, C, s * H, s * W) and sr.dtype == torch.float64
    np.testing.assert_allclose(sr[0].numpy(), ref, rtol=0, atol=1e-10)
    mg = search_graph(lr, s, k=k, window=window, cross_scale=cross)
    np.testing.assert_allclose(mg.distance[0, :, 0].numpy(), best.reshape(-1), rtol=1e-10, atol=1e-12)


def test_recurrence_map_matches_plain_loop():
    lr = _rand(3, 21, 26, seed=7)
    _, best = _reference(lr[0].numpy(), 2, k=1, window=3)
    p = 3
    acc, cnt = np.zeros((21, 27)), np.zeros((21, 27))  # the 10×13 grid's canvas
    for i in range(best.shape[0]):
        for j in range(best.shape[1]):
            acc[2 * i: 2 * i + p, 2 * j: 2 * j + p] += best[i, j]
            cnt[2 * i: 2 * i + p, 2 * j: 2 * j + p] += 1
    rec = recurrence_map(lr, 2, window=3)
    assert rec.shape == (1, 1, 21, 26)
    np.testing.assert_allclose(rec[0, 0].numpy(), (acc / cnt)[:21, :26], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("s", [2, 3, 4])
@pytest.mark.parametrize("H,W", [(24, 36), (25, 37), (27, 26)])
def test_shapes_batches_and_dtype(s, H, W):
    lr = torch.rand(2, 3, H, W, generator=torch.Generator().manual_seed(H))
    sr = graphagg_star(lr, s, window=3)
    assert sr.shape == (2, 3, s * H, s * W) and sr.dtype == torch.float32
    assert float(sr.min()) >= 0 and float(sr.max()) <= 1
    one = graphagg_star(lr[1:], s, window=3)  # batch members are independent
    torch.testing.assert_close(sr[1:], one, rtol=1e-5, atol=1e-6)


def test_constant_image_is_reproduced():
    # odd sizes: no query patch holds released zero padding (which would bias its AdaPN statistics)
    lr = torch.full((1, 3, 21, 23), 0.3, dtype=torch.float64)
    for cross in (True, False):
        torch.testing.assert_close(graphagg_star(lr, 2, cross_scale=cross), torch.full((1, 3, 42, 46), 0.3,
                                   dtype=torch.float64), rtol=0, atol=1e-12)


def _astronaut_lr():
    import skimage.data

    img = torch.from_numpy(skimage.data.astronaut()[100:196, 180:276]).permute(2, 0, 1)
    return (imresize(img, 0.5).double() / 255)[None]


SWITCHES = [dict(adapn=False), dict(weighting="distance"), dict(cross_scale=False),
            dict(embedding="vgg-random"), dict(k=3), dict(window=4), dict(patch_size=5)]


@pytest.mark.parametrize("change", SWITCHES, ids=lambda d: next(iter(d)))
def test_every_switch_changes_the_output(change):
    lr = _astronaut_lr()  # 48×48: son grid 12×12, so window 30 is global and 4 is not
    base = graphagg_star(lr, 2)
    other = graphagg_star(lr, 2, **change)
    assert other.shape == base.shape
    assert float((other - base).abs().max()) > 1e-3


@pytest.mark.parametrize("cross", [True, False])
def test_details_geometry_and_fold(cross):
    lr = _rand(3, 23, 26, seed=3)
    s, window = (3, 2) if cross else (2, 4)  # windows smaller than the 3×4 son / 11×13 LR grids
    mg = search_graph(lr, s, k=3, window=window, cross_scale=cross)
    det = graphagg_details(mg)  # all queries
    for q in range(det.query_index.numel()):
        torch.testing.assert_close(crop_box(lr[0], det.query_boxes[q]), det.query_patches[q], rtol=0, atol=0)
        for r in range(mg.k):
            torch.testing.assert_close(crop_box(mg.son[0], det.son_boxes[q, r]), det.son_patches[q, r],
                                       rtol=0, atol=0)
            torch.testing.assert_close(crop_box(mg.hr_source[0], det.hr_boxes[q, r]), det.hr_patches[q, r],
                                       rtol=0, atol=0)
        if cross:  # the HR patch covers the same content as the son patch, s× larger
            assert torch.equal(det.hr_boxes[q, :, :2], s * det.son_boxes[q, :, :2])
        wb = det.window_boxes[q]
        assert ((det.son_boxes[q, :, 0] >= wb[0]) & (det.son_boxes[q, :, 0] + 3 <= wb[0] + wb[2])).all()
        assert ((det.son_boxes[q, :, 1] >= wb[1]) & (det.son_boxes[q, :, 1] + 3 <= wb[1] + wb[3])).all()
    P = 3 * s
    pads = tuple(s * v for v in mg.query_padding)
    folded = patch2im(det.aggregate.reshape(1, -1, 3 * P * P).transpose(1, 2), mg.query_grid, P, 2 * s, pads)
    sr = graphagg_star(lr, s, k=3, window=window, cross_scale=cross)
    torch.testing.assert_close(folded.clamp(0, 1), sr)
    torch.testing.assert_close(det.weights.sum(-1), torch.ones(det.weights.shape[0], dtype=torch.float64))


def test_same_scale_never_matches_itself():
    lr = _rand(3, 20, 20, seed=5)
    mg = search_graph(lr, 2, cross_scale=False, window=3)
    assert not (mg.index == torch.arange(mg.index.shape[1]).view(1, -1, 1)).any()
    assert (mg.distance > 0).all()


def test_recurrence_from_graph_uses_nearest():
    lr = _rand(3, 18, 18, seed=9)
    mg = search_graph(lr, 2, k=3)
    torch.testing.assert_close(recurrence_from_graph(mg), recurrence_map(lr, 2))


@pytest.mark.parametrize("bad,kwargs,err", [
    (torch.rand(3, 20, 20), {}, ValueError),
    (torch.rand(1, 4, 20, 20), {}, ValueError),
    (torch.randint(0, 255, (1, 3, 20, 20)), {}, TypeError),
    (torch.rand(1, 3, 20, 20), dict(embedding="features"), ValueError),
    (torch.rand(1, 3, 20, 20), dict(weighting="gaussian"), ValueError),
    (torch.rand(1, 3, 20, 20), dict(scale=1), ValueError),
    (torch.rand(1, 3, 5, 20), {}, ValueError),
    (torch.rand(1, 3, 20, 20) * 255, {}, ValueError),
    (torch.rand(1, 3, 20, 20), dict(k=0), ValueError),
    (torch.rand(1, 3, 7, 7), dict(k=9, cross_scale=False), ValueError),
])
def test_bad_input_is_rejected(bad, kwargs, err):
    scale = kwargs.pop("scale", 2)
    with pytest.raises(err):
        graphagg_star(bad, scale, **kwargs)
