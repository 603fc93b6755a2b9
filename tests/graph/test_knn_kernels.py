"""The engines of the torch backend (C kernels with float32 bounds or bfloat16 keys, torch alone): the same bits
as each other, exact against the float64 brute force, and the bfloat16 keys' proven bounds."""

from __future__ import annotations

import pytest
import torch

import ignn_lab.graph.knn_bf16 as knn_bf16
import ignn_lab.graph.knn_exact as knn_exact
import ignn_lab.graph.knn_torch as knn_torch
from ignn_lab.graph import cross_scale_knn, kernels
from tests.graph.support import HAS_BF16, c_engines, check_against_brute, needs_bf16, needs_kernels, periodic_son


@needs_kernels
def test_kernels_build_where_a_compiler_exists():
    assert kernels.load() is not None, kernels.status()
    assert kernels.status().startswith("C kernels")


@needs_kernels
@pytest.mark.parametrize("dim", [1, 3, 15, 16, 17, 27, 64, 576, 1001])
def test_kernel_distance_has_the_same_bits_as_the_torch_formula(dim):
    gen = torch.Generator().manual_seed(dim)
    for scale in (1e-6, 1e-2, 1.0, 1e3):
        q = torch.randn(50, dim, generator=gen) * scale
        s = q + torch.randn(50, dim, generator=gen) * scale * torch.rand(50, 1, generator=gen)
        torch_bits = knn_exact._lane_sum((q - s).square())
        kernel_bits = torch.tensor([kernels.sqdist(q[i].contiguous(), s[i].contiguous()) for i in range(50)])
        assert torch.equal(kernel_bits, torch_bits)
        exact = ((q.double() - s.double()) ** 2).sum(-1)
        torch.testing.assert_close(kernel_bits.double(), exact, rtol=1e-6, atol=0)


@needs_kernels
def test_exact_sqdist_with_and_without_kernels_agree_on_broadcast_and_strided_inputs():
    gen = torch.Generator().manual_seed(1)
    q = torch.randn(2, 5, 40, generator=gen)
    cases = [torch.randn(2, 1, 7, 40, generator=gen),  # broadcast over queries (the reference backend)
             torch.randn(2, 5, 9, 40, generator=gen)[:, :, ::2],  # strided candidates
             torch.randn(7, 40, generator=gen)]  # one list for every query
    for cand in cases:
        with_kernel = kernels.sqdist_batch(q, cand)
        torch_formula = knn_exact._lane_sum((q.unsqueeze(-2) - cand).square())
        assert torch.equal(with_kernel, torch_formula)
        assert torch.equal(knn_exact.exact_sqdist(q, cand), with_kernel)


def _engines():
    return ["torch"] + c_engines()


CASES = [
    # B, C, H, W, g, window, centering, k
    (2, 8, 45, 62, 2, 8, "corrected", 5),
    (1, 8, 44, 59, 3, 5, "released", 5),
    (1, 16, 40, 40, 2, 30, "corrected", 4),  # window larger than the son grid: clipped to it
    (2, 3, 33, 31, 2, 2, "corrected", 4),  # fewer in-window candidates than the shortlist
]


@needs_kernels
@pytest.mark.parametrize("engine", _engines())
@pytest.mark.parametrize("case", CASES)
def test_every_engine_matches_brute_force(engine, case):
    B, C, H, W, g, window, centering, k = case
    gen = torch.Generator().manual_seed(H * W + C)
    query = torch.randn(B, C, H, W, generator=gen) + 3  # an offset: centring matters
    son = torch.randn(B, C, -(-H // g), -(-W // g), generator=gen) + 3
    res = cross_scale_knn(query, son, k=k, window=window, graph_scale=g, centering=centering, backend="torch",
                          engine=engine)  # a named engine runs even on patches below knn_bf16.MIN_DIM
    assert res.engine == engine
    check_against_brute(res, query, son, k=k, window=window, graph_scale=g, centering=centering)


@needs_kernels
@pytest.mark.parametrize("engine", c_engines())
@pytest.mark.parametrize("shape", [(2, 16, 37, 42), (1, 70, 30, 31)])
def test_whole_image_search_through_the_kernels_matches_brute_force(engine, shape):
    """window=None on CPU: tiles of queries against every son patch (a window covering the son grid)."""
    B, C, H, W = shape
    gen = torch.Generator().manual_seed(C)
    query, son = torch.randn(B, C, H, W, generator=gen) + 2, torch.randn(B, C, H // 2, W // 2, generator=gen) + 2
    res = cross_scale_knn(query, son, k=5, window=None, backend="torch", engine=engine,
                          tile=(4, 8))  # several tiles, partial last ones
    assert res.engine == engine and res.selection == "kernel"
    check_against_brute(res, query, son, k=5, window=None, graph_scale=2)
    band = cross_scale_knn(query, son, k=5, window=None, backend="torch", engine="torch")  # the band path
    assert band.engine == "torch" and band.selection in ("topk", "heap")
    assert torch.equal(band.index, res.index) and torch.equal(band.distance, res.distance)


def test_global_tiles_bound_the_key_matrix():
    assert knn_torch._global_tile(192, 256, 100) == (24, 32)
    th, tw = knn_torch._global_tile(192, 256, 65536)
    assert th * tw * 65536 <= knn_torch.GLOBAL_TILE_ELEMS and th * tw >= 64
    assert knn_torch._global_tile(3, 2, 10) == (3, 2)


@needs_kernels
@pytest.mark.parametrize("engine", _engines())
def test_rescan_is_exercised_and_exact_with_ties(engine):
    """No shortlist margin and a periodic son (exact ties): many rows are not certified and get rescanned
    (inside the kernel for the C engines)."""
    gen = torch.Generator().manual_seed(9)
    query = torch.randn(1, 3, 30, 30, generator=gen)
    son = periodic_son(1, 3, 15, 15, 4, gen)
    res = cross_scale_knn(query, son, k=3, window=5, graph_scale=2, backend="torch", engine=engine,
                          shortlist_extra=0)
    assert res.engine == engine and res.shortlist == 3 and res.rescans > 0
    check_against_brute(res, query, son, k=3, window=5, graph_scale=2, exact_ties=True)


@needs_kernels
@pytest.mark.parametrize("engine", _engines())
def test_zero_features_tie_at_distance_zero_in_every_engine(engine):
    gen = torch.Generator().manual_seed(4)
    query = torch.relu(torch.randn(1, 8, 32, 32, generator=gen) - 1.5)
    son = torch.relu(torch.randn(1, 8, 16, 16, generator=gen) - 1.5)
    query[..., :12, :12] = 0
    son[..., :8, :8] = 0
    res = cross_scale_knn(query, son, k=5, window=6, graph_scale=2, backend="torch", engine=engine)
    assert res.engine == engine
    check_against_brute(res, query, son, k=5, window=6, graph_scale=2, exact_ties=True)
    assert bool((res.distance[0, 0] == 0).all())


@needs_kernels
def test_auto_engine_follows_its_rules():
    """auto: bfloat16 keys for D >= knn_bf16.MIN_DIM where the CPU has them, float32 bounds below; torch for
    float64; a named engine that cannot run says why."""
    gen = torch.Generator().manual_seed(5)
    small, small_son = torch.randn(1, 3, 30, 32, generator=gen), torch.randn(1, 3, 15, 16, generator=gen)
    wide, wide_son = torch.randn(1, 64, 60, 64, generator=gen), torch.randn(1, 64, 30, 32, generator=gen)
    assert cross_scale_knn(small, small_son, k=5, window=6).engine == "c-float32"
    assert cross_scale_knn(wide, wide_son, k=5, window=6).engine == ("c-bf16" if HAS_BF16 else "c-float32")
    assert cross_scale_knn(small.double(), small_son.double(), k=5, window=6).engine == "torch"
    with pytest.raises(ValueError, match="float32 CPU tensors, got torch.float64"):
        cross_scale_knn(small.double(), small_son.double(), k=5, window=6, engine="c-float32")
    with pytest.raises(ValueError, match="exceeds the kernels' 64"):
        cross_scale_knn(wide, wide_son, k=5, window=9, engine="c-float32", shortlist_extra=60)
    nan = wide.clone()
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        cross_scale_knn(nan, wide_son, k=5, window=6, engine="c-float32")
    assert cross_scale_knn(nan, wide_son, k=5, window=6).engine == "torch"  # auto: the engine that applies
    if not HAS_BF16:
        with pytest.raises(ValueError, match="no native bfloat16"):
            cross_scale_knn(wide, wide_son, k=5, window=6, engine="c-bf16")


def _key_bounds(q_cols: torch.Tensor, son: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower bounds from bfloat16 keys (kernel rows, GEMM, knn_bf16's map) and float64 distances, queries ×
    son rows (the whole son as one union)."""
    _, D, R = q_cols.shape
    n = son.shape[0]
    width = knn_bf16.key_width(D)
    gamma = knn_bf16.bf16_gamma(D, width)
    centre = q_cols.mean(2)
    cand = torch.empty(1, n, width, dtype=torch.bfloat16)
    kernels.augment_union_bf16(son, union_base=torch.zeros(1, dtype=torch.int64), centre=centre, out=cand,
                               union_rows=1, union_cols=n, son_cols=n, shrink=1 - gamma, c1=knn_bf16.C1,
                               up=knn_bf16.UP)
    q_aug = torch.empty(1, R, width, dtype=torch.bfloat16)
    row_term = torch.empty(1, R, dtype=torch.float64)
    kernels.augment_queries_bf16(q_cols, centre=centre, out=q_aug, row_term=row_term, shrink=1 - gamma,
                                 c1=knn_bf16.C1, up=knn_bf16.UP, kappa_up=knn_bf16.KAPPA_UP,
                                 t_split=knn_bf16.T_SPLIT)
    keys = torch.bmm(q_aug, cand.transpose(1, 2)).double()[0]
    amax = max(float(q_cols.abs().max()), float(son.abs().max()))
    _, scale, rel, slack = knn_bf16.bound_map(row_term, amax, width)
    low = scale * (keys - rel * keys.abs()) - row_term[0, :, None] - slack
    exact = ((q_cols[0].T.double()[:, None, :] - son.double()[None]) ** 2).sum(-1)
    return low, exact


@needs_kernels
@needs_bf16
@pytest.mark.parametrize("offset,spread", [(0.0, 1.0), (50.0, 1.0), (0.0, 1e-3), (1e4, 10.0), (0.0, 1e-20)])
def test_bfloat16_key_bounds_never_exceed_the_true_distance(offset, spread):
    """The derivation of knn_bf16, checked entry by entry: every key's lower bound ≤ the float64 distance."""
    gen = torch.Generator().manual_seed(int(offset) + 7)
    D, R = 96, 24
    q_cols = (offset + spread * torch.randn(1, D, R, generator=gen)).contiguous()
    son = offset + spread * torch.randn(99, D, generator=gen)
    son[:5] = q_cols[0, :, :5].T  # exact duplicates: distance 0
    for i, rel in enumerate((3e-3, 1e-2, 3e-2, 0.1, 0.3)):  # near duplicates, bfloat16's resolution and above
        son[5 + 10 * i: 15 + 10 * i] = q_cols[0, :, :10].T * (1 + rel * torch.randn(10, D, generator=gen))
    low, exact = _key_bounds(q_cols, son)
    assert bool((low <= exact).all()), float((low - exact).max())
    # the bound is useful, not vacuous: most candidates are excluded by it at the nearest distance
    if spread >= 1e-3 and offset < 1e3:
        nearest = exact.min(1, keepdim=True).values
        assert float((low > nearest).float().mean()) > 0.5


@needs_kernels
@needs_bf16
def test_bfloat16_key_bounds_hold_against_adversarial_rounding():
    """Every coordinate of q rounds up and of s rounds down by almost half a bfloat16 step, so ‖Q − S‖² exceeds
    the true distance by 20 %: without the rounding margins (C1) the bound would be wrong here."""
    D, step = 96, 2.0 ** -7  # bfloat16 spacing in [1, 2)
    q = torch.full((D,), 1.5 - 0.49 * step)
    s = torch.full((D,), 1.5 - 11 * step + 0.49 * step)
    q_cols = torch.stack([q, -q], 1).unsqueeze(0).contiguous()  # centre exactly 0: q − c = q
    low, exact = _key_bounds(q_cols, torch.stack([s, -s, q + 0.3]))
    assert float((q.bfloat16().double() - s.bfloat16().double()).square().sum()) > 1.15 * float(exact[0, 0])
    assert bool((low <= exact).all()), float((low - exact).max())
