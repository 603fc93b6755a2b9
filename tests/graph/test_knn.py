"""cross_scale_knn, every backend, against an independent float64 brute force (``support.brute_force``): exactness,
ties, the torch backend's tiling and selection, the backend choice, and argument errors."""

from __future__ import annotations

import sys
import threading

import pytest
import torch

import ignn_lab.graph.knn as knn_mod
import ignn_lab.graph.knn_exact as knn_exact
import ignn_lab.graph.knn_torch as knn_torch
from ignn_lab.graph import cross_scale_knn
from ignn_lab.graph.faiss_ops import heap_smallest
from ignn_lab.graph.patches import im2patch_rows
from ignn_lab.graph.workers import parallel_bands
from tests.graph.support import (BACKENDS, HAS_FAISS, HAS_KERNELS, check_against_brute, needs_cuda, needs_faiss,
                                 needs_kernels, periodic_son)


RANDOM_CASES = [
    # B, C, H, W, g, window, centering, k
    (2, 3, 45, 62, 2, 8, "corrected", 5),  # odd H, even W, window smaller than the son grid, clamping
    (1, 8, 44, 59, 3, 5, "released", 5),  # g = 3, released centring
    (1, 8, 44, 59, 3, 5, "corrected", 4),  # g = 3, corrected centring
    (2, 4, 41, 58, 2, 12, "corrected", 5),  # square window shrinks to min(12, 10, 14) = 10
    (1, 16, 40, 37, 3, None, "corrected", 5),  # global
    (3, 2, 30, 30, 2, 30, "corrected", 3),  # window covers the son grid: global, batch 3
    (1, 64, 36, 42, 2, 6, "corrected", 7),  # 576-d
    (2, 3, 21, 19, 1, 5, "corrected", 6),  # same-scale (g = 1)
    (1, 3, 24, 26, 2, 3, "corrected", 9),  # k = every candidate
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", RANDOM_CASES, ids=lambda c: "B{}C{}_{}x{}_g{}_w{}_{}_k{}".format(*c))
def test_random_tensors_match_float64_brute_force(case, dtype, backend):
    B, C, H, W, g, window, centering, k = case
    gen = torch.Generator().manual_seed(hash(case) % 2**31)
    query = torch.randn(B, C, H, W, generator=gen, dtype=dtype)
    son = torch.randn(B, C, H // g, W // g, generator=gen, dtype=dtype)
    res = cross_scale_knn(query, son, k=k, window=window, graph_scale=g, centering=centering, backend=backend)
    assert res.backend in ("reference", "torch", "faiss") and res.engine != "auto"
    check_against_brute(res, query, son, k=k, window=window, graph_scale=g, centering=centering,
                        cache_key=(case, dtype))


@pytest.mark.parametrize("tile", [1, 3, 5, 64])
def test_torch_tiles_of_any_size(tile):
    gen = torch.Generator().manual_seed(5)
    query, son = torch.randn(2, 3, 29, 34, generator=gen), torch.randn(2, 3, 14, 17, generator=gen)
    res = cross_scale_knn(query, son, k=4, window=5, graph_scale=2, backend="torch", tile=tile)
    check_against_brute(res, query, son, k=4, window=5, graph_scale=2)


@pytest.mark.parametrize("window", [47, None])
def test_long_candidate_lists_use_grouped_selection(window):
    """≥ GROUPED_MIN_CANDIDATES candidates per query: the group-minimum shortlist, with masked entries."""
    gen = torch.Generator().manual_seed(13)
    query, son = torch.randn(1, 3, 100, 98, generator=gen), torch.randn(1, 3, 102, 104, generator=gen)
    res = cross_scale_knn(query, son, k=5, window=window, graph_scale=2, backend="torch")
    n_cand = 47 * 47 if window else 51 * 52
    assert n_cand >= knn_exact.GROUPED_MIN_CANDIDATES
    check_against_brute(res, query, son, k=5, window=window, graph_scale=2)


@pytest.mark.parametrize("patch_size,stride", [(3, 1), (5, 3), (2, 2)])
def test_other_patch_geometry(patch_size, stride):
    gen = torch.Generator().manual_seed(11)
    query, son = torch.randn(1, 2, 23, 20, generator=gen), torch.randn(1, 2, 11, 10, generator=gen)
    for backend in BACKENDS:
        res = cross_scale_knn(query, son, k=3, window=4, graph_scale=2, patch_size=patch_size, stride=stride,
                              backend=backend)
        check_against_brute(res, query, son, k=3, window=4, graph_scale=2, patch_size=patch_size,
                            stride=stride)


def test_backends_agree_bit_for_bit():
    """One distance formula everywhere: backends return identical tensors, not merely close ones."""
    gen = torch.Generator().manual_seed(2)
    query, son = torch.randn(2, 16, 40, 44, generator=gen), torch.randn(2, 16, 20, 22, generator=gen)
    for window in (6, None):
        ref = cross_scale_knn(query, son, window=window, backend="reference")
        for backend in BACKENDS[1:]:
            res = cross_scale_knn(query, son, window=window, backend=backend)
            assert torch.equal(res.distance, ref.distance) and torch.equal(res.index, ref.index)


# ----------------------------------------------------------------------------------------------- ties


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("window", [5, None])
def test_duplicated_son_patches_resolve_to_lower_index(backend, window):
    gen = torch.Generator().manual_seed(7)
    query = torch.randn(2, 3, 36, 40, generator=gen)
    son = periodic_son(2, 3, 18, 20, 4, gen)  # son patch (r, c) == (r, c + 2): every distance is tied
    res = cross_scale_knn(query, son, k=5, window=window, graph_scale=2, backend=backend)
    check_against_brute(res, query, son, k=5, window=window, graph_scale=2, exact_ties=True)
    d = res.distance
    assert bool((d[..., 0] == d[..., 1]).any())  # the ties really occur


@pytest.mark.parametrize("backend", BACKENDS)
def test_all_equal_candidates_give_the_lowest_indices(backend):
    """Constant son (e.g. a flat or saturated region): all candidates tie; the k lowest window indices win."""
    query = torch.randn(1, 4, 30, 34, generator=torch.Generator().manual_seed(1))
    son = torch.full((1, 4, 15, 17), 0.25)
    son[..., -1, :] = 0.0  # the bottom-padded rows differ only through the pad, still many exact ties
    res = cross_scale_knn(query, son, k=5, window=4, graph_scale=2, backend=backend)
    check_against_brute(res, query, son, k=5, window=4, graph_scale=2, exact_ties=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_features_tie_at_distance_zero(backend):
    """Post-ReLU features are often exactly zero: zero query vs zero son patches, distance 0, lowest index."""
    gen = torch.Generator().manual_seed(4)
    query = torch.relu(torch.randn(1, 8, 32, 32, generator=gen) - 1.5)
    son = torch.relu(torch.randn(1, 8, 16, 16, generator=gen) - 1.5)
    query[..., :12, :12] = 0
    son[..., :8, :8] = 0
    res = cross_scale_knn(query, son, k=5, window=6, graph_scale=2, backend=backend)
    check_against_brute(res, query, son, k=5, window=6, graph_scale=2, exact_ties=True)
    assert bool((res.distance[0, 0] == 0).all())


@pytest.mark.parametrize("window", [5, None])
def test_fallback_path_is_exercised_and_exact(window):
    """With no shortlist margin, rows with ties are not certified and go through the exact fallback (the torch
    engine's; the C kernels rescan inside, tested in test_knn_kernels)."""
    gen = torch.Generator().manual_seed(9)
    query = torch.randn(1, 3, 30, 30, generator=gen)
    son = periodic_son(1, 3, 15, 15, 4, gen)
    res = cross_scale_knn(query, son, k=3, window=window, graph_scale=2, backend="torch", engine="torch",
                          shortlist_extra=0)
    assert res.engine == "torch" and res.shortlist == 3 and res.rescans > 0
    check_against_brute(res, query, son, k=3, window=window, graph_scale=2, exact_ties=True)
    default = cross_scale_knn(query, son, k=3, window=window, graph_scale=2, backend="torch", engine="torch")
    assert default.shortlist == 3 + knn_exact.SHORTLIST_EXTRA
    assert torch.equal(default.index, res.index) and torch.equal(default.distance, res.distance)


# ------------------------------------------------------------------------------------- torch tiling


def test_windowed_torch_never_builds_the_full_matrix(monkeypatch):
    shapes = []
    real = knn_torch._lower_bounds  # observed, not changed: every GEMM's operand shapes are recorded
    monkeypatch.setattr(knn_torch, "_lower_bounds", lambda q, c, cand, gam, **kw: shapes.append(
        (q.shape, cand.shape)) or real(q, c, cand, gam, **kw))
    gen = torch.Generator().manual_seed(6)
    query, son = torch.randn(1, 3, 96, 100, generator=gen), torch.randn(1, 3, 48, 50, generator=gen)
    res = cross_scale_knn(query, son, k=5, window=8, graph_scale=2, backend="torch", tile=8, engine="torch")
    check_against_brute(res, query, son, k=5, window=8, graph_scale=2)
    n_son = res.son_grid[0] * res.son_grid[1]
    assert shapes
    for q_shape, (groups_c, n_cand, _) in shapes:  # queries arrive as columns: groups × D × Tq
        assert q_shape[0] == groups_c and q_shape[2] == 64
        assert n_cand <= (8 + 4) ** 2 < n_son  # each tile meets the union of its windows only


@pytest.mark.parametrize("selection", ["topk", "heap"])
@pytest.mark.parametrize("runs_as_views", [0, 10**6])
def test_selection_and_union_paths_match_brute_force(selection, runs_as_views):
    """Both shortlist selections (torch.topk, faiss's heap) and both ways of reading the unions (strided views,
    one gather), on chunks that span several bands and batch items; window 2 leaves rows with fewer
    in-window candidates than the shortlist (unfilled heap slots)."""
    if selection == "heap" and not HAS_FAISS:
        pytest.skip("needs faiss")
    gen = torch.Generator().manual_seed(21)
    query, son = torch.randn(2, 3, 41, 38, generator=gen), torch.randn(2, 3, 20, 19, generator=gen)
    son_grid = (10, 9)
    son_rows = im2patch_rows(son, 0, son_grid[0], 3, 2)
    for window, k in ((6, 5), (2, 4)):
        dist, idx, stats = knn_torch.windowed_search(query, son_rows, son_grid, window, 2, k, tile=(4, 6),
                                                     engine="torch", selection=selection,
                                                     runs_as_views=runs_as_views)
        assert stats.engine == "torch" and stats.selection == selection
        res = cross_scale_knn(query, son, k=k, window=window, graph_scale=2, backend="reference")
        check_against_brute(res, query, son, k=k, window=window, graph_scale=2)
        assert torch.equal(dist, res.distance) and torch.equal(idx, res.index)


def test_results_do_not_alias_reused_buffers():
    """Windowed searches reuse per-thread buffers between calls: a result must survive the next search."""
    gen = torch.Generator().manual_seed(17)
    q1, s1 = torch.randn(1, 3, 30, 28, generator=gen), torch.randn(1, 3, 15, 14, generator=gen)
    q2, s2 = torch.randn(2, 3, 34, 30, generator=gen), torch.randn(2, 3, 17, 15, generator=gen)
    first = cross_scale_knn(q1, s1, k=4, window=5, backend="torch")
    kept = (first.index.clone(), first.distance.clone())
    cross_scale_knn(q2, s2, k=4, window=5, backend="torch")
    assert torch.equal(first.index, kept[0]) and torch.equal(first.distance, kept[1])
    again = cross_scale_knn(q1, s1, k=4, window=5, backend="torch")
    assert torch.equal(again.index, kept[0]) and torch.equal(again.distance, kept[1])
    with torch.inference_mode():  # buffers made here are inference tensors ...
        inside = cross_scale_knn(q2, s2, k=4, window=5, backend="torch")
    after = cross_scale_knn(q2, s2, k=4, window=5, backend="torch")  # ... and must not be reused out here
    assert torch.equal(inside.index, after.index) and torch.equal(inside.distance, after.distance)


@needs_faiss
def test_heap_selection_equals_topk_selection():
    """faiss's heap and torch.topk give the same shortlist values and the same bound on the rest, with masked
    (inf) entries and rows that have fewer finite entries than the shortlist."""
    gen = torch.Generator().manual_seed(4)
    bound = torch.randn(3, 40, 50, generator=gen)
    bound[torch.rand(3, 40, 50, generator=gen) < 0.5] = float("inf")
    bound[0, 0, 3:] = float("inf")  # 3 finite entries for a shortlist of 6
    bound[1, 1] = 0.25  # a row of ties
    hv, hp, hx = heap_smallest(bound, 6)
    tv, tp, tx = knn_exact.smallest_entries(bound, 6)
    assert torch.equal(hv, tv) and torch.equal(hx, tx.clamp(max=torch.finfo(torch.float32).max))
    finite = torch.isfinite(hv)
    assert torch.equal(bound.gather(2, hp)[finite], hv[finite])  # positions point at their values
    assert torch.equal(hp[1, 1], torch.arange(6))  # ties: lowest positions first


def test_heap_selection_only_for_safe_inputs():
    ok = knn_exact.heap_select_ok
    x = torch.randn(2, 3)
    assert ok(x, x) == HAS_FAISS
    assert not ok(x.double(), x.double())
    assert not ok(x, torch.tensor([1.0, float("nan")]))
    assert not ok(x, torch.tensor([1.0, 2 * knn_exact.HEAP_MAX_ABS]))


@pytest.mark.parametrize("threads", [1, 2])
def test_parallel_bands_keep_the_callers_thread_setting(threads):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        gen = torch.Generator().manual_seed(3)
        query, son = torch.randn(1, 3, 60, 64, generator=gen), torch.randn(1, 3, 30, 32, generator=gen)
        res = cross_scale_knn(query, son, k=4, window=6, backend="torch", tile=4)
        assert torch.get_num_threads() == threads
        ref = cross_scale_knn(query, son, k=4, window=6, backend="reference")
        assert torch.equal(res.index, ref.index) and torch.equal(res.distance, ref.distance)
    finally:
        torch.set_num_threads(before)


def test_parallel_bands_run_every_part_on_one_thread():
    """Each part runs in a single-threaded worker, also after torch's lazy per-thread set-up (which reads the
    process default, the caller's count): 2-thread workers put extra OpenMP teams in the process, which slowed
    every later network call, searches or not. Threads made later still default to the caller's count."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        seen = []

        def part(parts: list[int]) -> None:
            torch.zeros(4).add_(1)  # a first ATen operation in this thread
            seen.append((threading.get_ident(), torch.get_num_threads()))

        for _ in range(2):
            parallel_bands(part, 8, torch.device("cpu"))
        assert {n for _, n in seen} == {1}
        assert threading.get_ident() not in {t for t, _ in seen}
        assert torch.get_num_threads() == 2
        later = []
        t = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
        t.start()
        t.join()
        assert later == [2]
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------------- backends, auto


def test_faiss_missing_gives_clear_error_and_auto_falls_back(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss -> ImportError (faiss "not installed")
    query, son = torch.randn(1, 3, 20, 20), torch.randn(1, 3, 10, 10)
    with pytest.raises(ImportError, match="pip install 'ignn-lab\\[faiss\\]'"):
        cross_scale_knn(query, son, window=None, backend="faiss")
    cpu = torch.device("cpu")
    # where faiss would be picked (large 576-d work, no C kernels in play), auto says why it is not
    name, note = knn_mod.resolve_backend("auto", windowed=False, device=cpu, work=knn_mod.AUTO_FAISS_MIN_WORK,
                                         dim=576, engine="torch")
    assert name == "torch" and "faiss not installed" in note
    res = cross_scale_knn(query, son, window=None, backend="auto", engine="torch")
    ref = cross_scale_knn(query, son, window=None, backend="reference")
    assert res.backend == "torch" and torch.equal(res.index, ref.index)


@needs_faiss
def test_auto_picks_by_shape():
    """Without the C kernels (engine='torch'), whole-image search follows the measured faiss crossover."""
    cpu, work = torch.device("cpu"), knn_mod.AUTO_FAISS_MIN_WORK
    query, son = torch.randn(1, 3, 40, 40), torch.randn(1, 3, 20, 20)
    assert cross_scale_knn(query, son, window=4, backend="auto", engine="torch").backend == "torch"
    assert knn_mod.resolve_backend("auto", windowed=False, device=cpu, work=work - 1, dim=576,
                                   engine="torch")[0] == "torch"
    name, note = knn_mod.resolve_backend("auto", windowed=False, device=cpu, work=work, dim=576, engine="torch")
    assert name == "faiss" and "crossover" in note
    name, note = knn_mod.resolve_backend("auto", windowed=False, device=cpu, work=work, dim=27, engine="torch")
    assert name == "torch" and "27-d" in note  # 27-d patches stay on torch
    res = cross_scale_knn(query, son, window=None, backend="auto", engine="torch")  # 27-d, small: torch
    assert res.backend == "torch" and "below the faiss crossover" in res.note


@needs_kernels
def test_auto_whole_image_search_on_cpu_uses_the_c_kernels_when_built():
    cpu = torch.device("cpu")
    name, note = knn_mod.resolve_backend("auto", windowed=False, device=cpu, work=10**12, dim=576)
    assert name == "torch" and "C kernels" in note
    name, _ = knn_mod.resolve_backend("auto", windowed=False, device=cpu, work=10**12, dim=576,
                                      dtype=torch.float64)  # float64 runs no kernel: the faiss rules
    assert name == ("faiss" if HAS_FAISS else "torch")


def test_resolve_backend_rules():
    cpu = torch.device("cpu")
    assert knn_mod.resolve_backend("reference", windowed=True, device=cpu, work=1) == ("reference", "")
    assert knn_mod.resolve_backend("auto", windowed=True, device=cpu, work=10**12)[0] == "torch"
    assert knn_mod.resolve_backend("auto", windowed=False, device=cpu, work=1, engine="torch")[0] == "torch"
    if HAS_FAISS:
        assert knn_mod.resolve_backend("auto", windowed=False, device=cpu, work=10**12, engine="torch")[0] == "faiss"
        assert knn_mod.resolve_backend("auto", windowed=False, device=cpu, work=10**12, dim=27,
                                       engine="torch")[0] == "torch"
    with pytest.raises(ValueError, match="backend must be one of"):
        knn_mod.resolve_backend("annoy", windowed=True, device=cpu, work=1)


def test_half_precision_is_searched_in_float32():
    gen = torch.Generator().manual_seed(8)
    query = torch.randn(1, 3, 20, 22, generator=gen).half()
    son = torch.randn(1, 3, 10, 11, generator=gen).half()
    res = cross_scale_knn(query, son, k=3, window=4, backend="torch")
    ref = cross_scale_knn(query.float(), son.float(), k=3, window=4, backend="reference")
    assert res.distance.dtype == torch.float16 and torch.equal(res.index, ref.index)


def test_result_fields():
    res = cross_scale_knn(torch.randn(2, 3, 45, 62), torch.randn(2, 3, 22, 31), k=5, window=8)
    assert res.engine in ("c-bf16", "c-float32", "torch") and res.backend == "torch"
    assert res.shortlist >= 5 and res.rescans >= 0
    assert res.query_grid == (22, 31) and res.son_grid == (11, 15)
    assert res.padding == (0, 0, 0, 1) and res.son_padding == (0, 1, 0, 0)
    assert res.window == 8 and res.graph_scale == 2 and res.patch_size == 3 and res.stride == 2
    assert res.index.shape == (2, 22 * 31, 5)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"k": 0}, ValueError, "k must be >= 1"),
    ({"k": 2.0}, TypeError, "k must be an int"),
    ({"k": 65}, ValueError, "number of candidates \\(64\\)"),
    ({"window": 0}, ValueError, "window must be >= 1"),
    ({"backend": "annoy"}, ValueError, "backend must be one of"),
    ({"centering": "middle"}, ValueError, "centering"),
    ({"tile": 0}, ValueError, "tile must be >= 1"),
    ({"engine": "gpu"}, ValueError, "engine must be one of"),
    ({"selection": "sort"}, ValueError, "selection must be one of"),
    ({"shortlist_extra": -1}, ValueError, "shortlist_extra must be >= 0"),
    ({"backend": "reference", "engine": "torch"}, ValueError, "engine='auto'"),
    ({"backend": "torch", "engine": "c-float32", "selection": "topk"}, ValueError, "selects inside the C kernel"),
])
def test_argument_errors(kwargs, exc, match):
    if kwargs.get("engine") == "c-float32" and not HAS_KERNELS:
        pytest.skip("no C kernels")
    args = {"k": 5, "window": 8, **kwargs}
    with pytest.raises(exc, match=match):
        cross_scale_knn(torch.randn(1, 3, 45, 62), torch.randn(1, 3, 22, 31), **args)


def test_input_errors():
    q, s = torch.randn(1, 3, 20, 20), torch.randn(1, 3, 10, 10)
    with pytest.raises(TypeError, match="torch.Tensor"):
        cross_scale_knn(q.numpy(), s)
    with pytest.raises(TypeError, match="floating"):
        cross_scale_knn(q.long(), s.long())
    with pytest.raises(ValueError, match="B×C×H×W"):
        cross_scale_knn(q[0], s[0])
    with pytest.raises(ValueError, match="share batch and channels"):
        cross_scale_knn(q, s[:, :2])
    with pytest.raises(ValueError, match="share dtype and device"):
        cross_scale_knn(q, s.double())
    with pytest.raises(ValueError, match="smaller than the patch size"):
        cross_scale_knn(q, s[..., :2, :])


@needs_cuda
@pytest.mark.needs_cuda
@pytest.mark.parametrize("window", [6, None])
def test_torch_backend_on_cuda_matches_cpu(window):
    gen = torch.Generator().manual_seed(12)
    query, son = torch.randn(2, 16, 40, 44, generator=gen), torch.randn(2, 16, 20, 22, generator=gen)
    ref = cross_scale_knn(query, son, window=window, backend="reference")
    res = cross_scale_knn(query.cuda(), son.cuda(), window=window, backend="torch")
    assert res.index.is_cuda
    torch.testing.assert_close(res.distance.cpu(), ref.distance, rtol=1e-5, atol=0)
    on_cpu = res.__class__(**{**res.__dict__, "index": res.index.cpu(), "distance": res.distance.cpu()})
    check_against_brute(on_cpu, query, son, k=5, window=window, graph_scale=2)
