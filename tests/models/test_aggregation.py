"""graph_aggregate, diff_map and spread_constant against plain loops written from the spec (§2, §4, §5)."""

import pytest
import torch

from ignn_lab.graph.patches import calc_padding, grid_size, im2patch, patch2im
from ignn_lab.models.aggregation import GraphAggregation, graph_aggregate, same_scale_knn
from ignn_lab.models.patch_ops import diff_map, spread_constant

EPS = 1e-5


def _padded(x, h_pads, w_pads):
    b, c, h, w = x.shape
    out = torch.zeros(b, c, h + sum(h_pads), w + sum(w_pads), dtype=x.dtype)
    out[:, :, h_pads[0]: h_pads[0] + x.shape[2], w_pads[0]: w_pads[0] + x.shape[3]] = x
    return out


def ref_aggregate(x, index, g, adapn, cross_scale, p=3, t=2):
    """One neighbour patch at a time: gather the g·p block, AdaIN it, add it to the canvas, average."""
    b, c, h, w = x.shape
    qh, qw = calc_padding(h, p, t), calc_padding(w, p, t)
    m1, m2 = grid_size(h, p, t), grid_size(w, p, t)
    if cross_scale:
        sh, sw = h // g, w // g
        src = x[:, :, : g * sh, : g * sw]
        sp_h, sp_w = calc_padding(sh, p, t), calc_padding(sw, p, t)
    else:
        sh, sw = h, w
        src = x.repeat_interleave(g, 2).repeat_interleave(g, 3)
        sp_h, sp_w = qh, qw
    src = _padded(src, (g * sp_h[0], g * sp_h[1]), (g * sp_w[0], g * sp_w[1]))
    n2 = grid_size(sw, p, t)
    xq = _padded(x, qh, qw)
    k = index.shape[2]
    hc, wc = g * ((m1 - 1) * t + p), g * ((m2 - 1) * t + p)
    canvas = torch.zeros(b, k, c, hc, wc, dtype=x.dtype)
    count = torch.zeros(hc, wc, dtype=x.dtype)
    gp, gt = g * p, g * t
    for bi in range(b):
        for i in range(m1):
            for j in range(m2):
                y = xq[bi, :, t * i: t * i + p, t * j: t * j + p].reshape(c, -1)
                if bi == 0:
                    count[gt * i: gt * i + gp, gt * j: gt * j + gp] += 1
                for r in range(k):
                    rr, cc = divmod(int(index[bi, i * m2 + j, r]), n2)
                    z = src[bi, :, gt * rr: gt * rr + gp, gt * cc: gt * cc + gp]
                    if adapn:
                        zf = z.reshape(c, -1)
                        mz, vz = zf.mean(1), zf.var(1, unbiased=True)
                        my, vy = y.mean(1), y.var(1, unbiased=True)
                        z = ((z - mz[:, None, None]) / torch.sqrt(vz[:, None, None] + EPS)
                             * torch.sqrt(vy[:, None, None] + EPS) + my[:, None, None])
                    canvas[bi, r, :, gt * i: gt * i + gp, gt * j: gt * j + gp] += z
    out = canvas / count
    return out[..., g * qh[0]: hc - g * qh[1], g * qw[0]: wc - g * qw[1]]


def _random_index(b, h, w, g, k, cross_scale, gen):
    m = grid_size(h) * grid_size(w)
    n = grid_size(h // g) * grid_size(w // g) if cross_scale else m
    return torch.randint(0, n, (b, m, k), generator=gen)


@pytest.mark.parametrize("g,h,w", [(2, 11, 14), (3, 16, 13), (2, 12, 9)])
@pytest.mark.parametrize("adapn", [True, False])
@pytest.mark.parametrize("cross_scale", [True, False])
def test_graph_aggregate_matches_loop(g, h, w, adapn, cross_scale):
    gen = torch.Generator().manual_seed(g * 100 + h)
    x = torch.randn(2, 3, h, w, generator=gen, dtype=torch.float64)
    index = _random_index(2, h, w, g, 3, cross_scale, gen)
    want = ref_aggregate(x, index, g, adapn, cross_scale)
    with torch.no_grad():  # the in-place inference path
        fast = graph_aggregate(x, index, graph_scale=g, adapn=adapn, cross_scale=cross_scale)
    xg = x.clone().requires_grad_()  # the training path
    slow = graph_aggregate(xg, index, graph_scale=g, adapn=adapn, cross_scale=cross_scale)
    assert fast.shape == want.shape == (2, 3, 3, g * h, g * w)
    torch.testing.assert_close(fast, want, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(slow.detach(), want, rtol=1e-10, atol=1e-10)
    chunked = graph_aggregate(x, index, graph_scale=g, adapn=adapn, cross_scale=cross_scale, max_elements=1)
    torch.testing.assert_close(chunked, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("g,h,w", [(2, 11, 14), (3, 16, 13)])
@pytest.mark.parametrize("adapn", [True, False])
@pytest.mark.parametrize("cross_scale", [True, False])
def test_graph_aggregate_gradient_matches_the_loop(g, h, w, adapn, cross_scale):
    """The training path's hand-written backward against autograd through the loop reference."""
    gen = torch.Generator().manual_seed(g * 7 + w)
    x = torch.randn(2, 3, h, w, generator=gen, dtype=torch.float64)
    index = _random_index(2, h, w, g, 3, cross_scale, gen)
    weight = torch.randn(2, 3, 3, g * h, g * w, generator=gen, dtype=torch.float64)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    (graph_aggregate(xa, index, graph_scale=g, adapn=adapn, cross_scale=cross_scale) * weight).sum().backward()
    (ref_aggregate(xb, index, g, adapn, cross_scale) * weight).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-9, atol=1e-9)


def test_graph_aggregate_gradcheck():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(1, 1, 6, 7, generator=gen, dtype=torch.float64, requires_grad=True)
    index = _random_index(1, 6, 7, 2, 2, True, gen)
    assert torch.autograd.gradcheck(lambda v: graph_aggregate(v, index, graph_scale=2), (x,))
    assert torch.autograd.gradcheck(lambda v: graph_aggregate(v, index, graph_scale=2, adapn=False), (x,))


def test_graph_aggregate_checks():
    x = torch.randn(1, 2, 8, 8)
    with pytest.raises(ValueError, match="expected B×M×k"):
        graph_aggregate(x, torch.zeros(1, 5, 2, dtype=torch.long), graph_scale=2)
    with pytest.raises(ValueError, match="index values must lie in"):
        graph_aggregate(x, torch.full((1, 16, 2), 99), graph_scale=2)


def test_diff_map_matches_loop():
    gen = torch.Generator().manual_seed(5)
    q = torch.randn(2, 4, 11, 10, generator=gen, dtype=torch.float64)
    s = torch.randn(2, 4, 5, 5, generator=gen, dtype=torch.float64)
    qv, qgrid, qpads = im2patch(q)
    sv, _, _ = im2patch(s)
    index = torch.randint(0, sv.shape[1], (2, qv.shape[1], 3), generator=gen)
    per_patch = torch.zeros(2, qv.shape[1], 3, 4, dtype=torch.float64)
    for b in range(2):
        for m in range(qv.shape[1]):
            for r in range(3):
                per_patch[b, m, r] = (qv[b, m] - sv[b, index[b, m, r]]).abs().view(4, 9).sum(1)
    # the release spreads each value over the query's footprint with patch2im (overlap average)
    cols = per_patch.reshape(2, qv.shape[1], 12, 1).expand(-1, -1, -1, 9).reshape(2, qv.shape[1], 108)
    want = patch2im(cols.transpose(1, 2), qgrid, 3, 2, qpads)
    torch.testing.assert_close(diff_map(q, s, index), want, rtol=1e-12, atol=1e-12)


def test_spread_constant_matches_patch2im_at_hr():
    """The release's HR spread (3g patches, stride 2g) is the g× nearest enlargement of the LR spread."""
    gen = torch.Generator().manual_seed(7)
    for h, w, g in [(9, 12, 2), (10, 7, 3)]:
        m1, m2 = grid_size(h), grid_size(w)
        pads = (0, calc_padding(h)[1], 0, calc_padding(w)[1])
        v = torch.randn(1, 2, m1, m2, generator=gen, dtype=torch.float64)
        cols = v.reshape(1, 2, 1, m1 * m2).expand(1, 2, 9 * g * g, m1 * m2).reshape(1, 18 * g * g, m1 * m2)
        hr = patch2im(cols, (m1, m2), 3 * g, 2 * g, tuple(g * x for x in pads))
        lr = spread_constant(v, pads)
        up = lr.repeat_interleave(g, 2).repeat_interleave(g, 3)
        torch.testing.assert_close(up, hr, rtol=1e-12, atol=1e-12)


def test_same_scale_knn_excludes_self():
    gen = torch.Generator().manual_seed(9)
    q = torch.randn(1, 3, 12, 12, generator=gen)
    q[:, :, 6:9, 6:9] = q[:, :, 0:3, 0:3]  # an exact duplicate patch
    graph = same_scale_knn(q, k=3, patch_size=3, stride=2, window=None, centering="corrected",
                           backend="reference")
    m = graph.index.shape[1]
    assert not (graph.index == torch.arange(m).view(1, m, 1)).any()
    assert graph.index[0, 3 * 6 + 3, 0] == 0  # the duplicate of patch (3, 3) is patch (0, 0), at distance 0


def test_sticky_window_mode_is_per_instance():
    kw = dict(k=2, window=4, embedding="pixel", edge_weighting="uniform")
    sticky = GraphAggregation(4, 2, window_mode="sticky", **kw)
    per_call = GraphAggregation(4, 2, window_mode="per-call", **kw)
    small, big = torch.rand(1, 3, 12, 12), torch.rand(1, 3, 40, 40)
    feats = lambda x: torch.zeros(1, 4, *x.shape[2:])  # noqa: E731
    son = lambda x: x[:, :, ::2, ::2]  # noqa: E731
    for agg in (sticky, per_call):
        agg(feats(small), small, son(small))  # son grid 3×3 ≤ 4: global
        assert agg.last_graph.window is None
        agg(feats(big), big, son(big))  # son grid 10×10 > 4
    assert sticky.window_latched and sticky.last_graph.window is None
    assert not per_call.window_latched and per_call.last_graph.window == 4
