"""The ``faiss`` backend of :func:`ignn_lab.graph.cross_scale_knn` (faiss is optional and imported lazily,
through :mod:`~ignn_lab.graph.faiss_ops`).

faiss ranks by ``‖q‖² + ‖s‖² − 2q·s`` in float32, so it only shortlists: it returns ``kp + 1`` neighbours of
vectors centred at the query chunk's mean; the first ``kp`` are recomputed exactly and the ``(kp+1)``-th
distance gives a lower bound on every candidate faiss left out (:func:`excluded_lower_bound`). Rows that this
bound does not certify are redone by the torch path, so results equal the other backends' bit for bit.

* Whole image (``window=None``): one ``faiss.knn_L2sqr`` per chunk of query rows on CPU; ``faiss.bfKnn`` on
  the tensors' GPU when faiss was built with GPUs (pointers are passed directly; faiss is not monkey-patched).
* Windowed, on CPU: one search per tile of queries against the union of their windows (the torch
  backend's tiling); hits outside a query's own window are dropped, which keeps the shortlist exact.
  On a GPU: one search per distinct window.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ignn_lab.graph.faiss_ops import faiss_search, load_faiss
from ignn_lab.graph.knn_exact import SearchStats, gemm_gamma, recompute_delta, refine_shortlist, shortlist_size
from ignn_lab.graph.knn_tiles import AxisTiles, choose_tile
from ignn_lab.graph.knn_torch import GLOBAL_BLOCK_ELEMS, rerun_rows
from ignn_lab.graph.patches import grid_size, im2patch_rows
from ignn_lab.graph.window import Centering, window_starts
from ignn_lab.graph.workers import parallel_bands

__all__ = ["excluded_lower_bound", "global_search", "windowed_search"]

#: Query rows per faiss call in a whole-image search (faiss blocks 4096 queries internally).
FAISS_CHUNK_ROWS = 8192


def excluded_lower_bound(t: Tensor, qnorm2: Tensor, gamma: float) -> Tensor:
    """Lower bound on the true distance of every candidate whose approximate distance is ≥ ``t``.

    With ``|d̃ − d| ≤ γ(‖q'‖² + ‖s'‖²)`` and ``‖s'‖ ≤ ‖q'‖ + √d``, ``d̃ ≥ t`` implies
    ``(1+γ)x² + 2γ‖q'‖x + 2γ‖q'‖² − t ≥ 0`` for ``x = √d``; the bound is the square of the positive root.

    Args:
        t: R approximate distances (the first excluded one per row).
        qnorm2: R squared norms of the centred queries.
    """
    a = qnorm2.sqrt()
    c0 = t - 2 * gamma * qnorm2
    root = (-gamma * a + torch.sqrt((gamma * a) ** 2 + (1 + gamma) * c0.clamp(min=0))) / (1 + gamma)
    return torch.where(c0 > 0, root * root, torch.zeros_like(t))


def _shortlist(faiss, qt: Tensor, cand: Tensor, kp: int, gamma: float, work: torch.dtype):
    """faiss shortlist on centred float32 vectors: (R×kp positions, R lower bounds of the excluded)."""
    kp = min(kp, cand.shape[0])
    c = qt.mean(0)
    qc, sc = qt - c, cand - c
    qn = qc.mul(qc).sum(1)
    d32, pos = faiss_search(faiss, qc.to(work), sc.to(work), min(kp + 1, cand.shape[0]))
    if kp < cand.shape[0]:
        excluded = excluded_lower_bound(d32[:, kp].to(qt.dtype), qn, gamma)
    else:
        excluded = torch.full((qt.shape[0],), math.inf, dtype=qt.dtype, device=qt.device)
    return pos[:, :kp], excluded


def global_search(query: Tensor, son: Tensor, k: int, *, patch_size: int = 3, stride: int = 2,
                  shortlist_extra: int | None = None) -> tuple[Tensor, Tensor, SearchStats]:
    """Exact whole-image kNN with faiss shortlists (CPU, or GPU with faiss-gpu); contract of the torch one.

    Args:
        query: B×C×H×W query embedding, float32 or float64. son: B×N×D son patch vectors, same dtype/device.
        k: neighbours, 1 ≤ k ≤ N. shortlist_extra: candidates recomputed beyond k (default 3).

    Returns:
        dist: B×M×k ascending squared distances. idx: B×M×k int64 son indices (ties: lower index first).
        stats: what ran.
    """
    faiss = load_faiss()
    B, _, H, W = query.shape
    m1, m2 = grid_size(H, patch_size, stride), grid_size(W, patch_size, stride)
    D = son.shape[2]
    gamma = gemm_gamma(D, torch.float32)
    delta = recompute_delta(D, query.dtype)
    band_rows = max(1, min(m1, FAISS_CHUNK_ROWS // m2, GLOBAL_BLOCK_ELEMS // max(1, D * m2)))
    kp = shortlist_size(k, son.shape[1], shortlist_extra)
    dist = torch.empty((B, m1 * m2, k), dtype=query.dtype, device=query.device)
    idx = torch.empty((B, m1 * m2, k), dtype=torch.int64, device=query.device)
    rescans = 0
    for ia in range(0, m1, band_rows):
        ib = min(ia + band_rows, m1)
        band = im2patch_rows(query, ia, ib, patch_size, stride)
        for b in range(B):
            pos, excluded = _shortlist(faiss, band[b], son[b], kp, gamma, torch.float32)
            d, i, doubtful = refine_shortlist(band[b], son[b], pos, excluded, k, delta=delta)
            rescans += rerun_rows(band[b], son[b], None, k, doubtful, d, i)
            dist[b, ia * m2: ib * m2], idx[b, ia * m2: ib * m2] = d, i
    return dist, idx, SearchStats("faiss", "faiss", kp, rescans)


def windowed_search(query: Tensor, son: Tensor, son_grid: tuple[int, int], side: int, graph_scale: int,
                    k: int, *, centering: Centering = "corrected", patch_size: int = 3, stride: int = 2,
                    shortlist_extra: int | None = None) -> tuple[Tensor, Tensor, SearchStats]:
    """Exact windowed kNN with faiss shortlists; same contract as the torch backend's.

    On CPU, one faiss search per tile of queries against the union of their windows (:func:`_windowed_cpu`);
    on a GPU, one search per distinct window.
    """
    faiss = load_faiss()
    kp = shortlist_size(k, side * side, shortlist_extra)
    if query.device.type == "cpu":
        return _windowed_cpu(faiss, query, son, son_grid, side, graph_scale, k, kp, centering, patch_size, stride)
    B, _, H, W = query.shape
    n1, n2 = son_grid
    m1, m2 = grid_size(H, patch_size, stride), grid_size(W, patch_size, stride)
    D = son.shape[2]
    dev = query.device
    gamma, delta = gemm_gamma(D, torch.float32), recompute_delta(D, query.dtype)
    r0 = window_starts(m1, n1, side, graph_scale, centering, dev)
    c0 = window_starts(m2, n2, side, graph_scale, centering, dev)
    row_runs, col_runs = _runs(r0.tolist()), _runs(c0.tolist())
    son_grid_t = son.view(B, n1, n2, D)
    off = torch.arange(side, device=dev)
    dist = torch.empty((B, m1, m2, k), dtype=query.dtype, device=dev)
    idx = torch.empty((B, m1, m2, k), dtype=torch.int64, device=dev)
    rescans = 0
    for ia, ib, rs in row_runs:
        band = im2patch_rows(query, ia, ib, patch_size, stride).view(B, ib - ia, m2, D)
        for ja, jb, cs in col_runs:
            cand_index = ((rs + off)[:, None] * n2 + (cs + off)[None, :]).reshape(-1)
            for b in range(B):
                qt = band[b, :, ja:jb].reshape(-1, D)
                window = son_grid_t[b, rs: rs + side, cs: cs + side].reshape(-1, D)
                pos, excluded = _shortlist(faiss, qt, window, kp, gamma, torch.float32)
                d, i, doubtful = refine_shortlist(qt, son[b], cand_index[pos], excluded, k, delta=delta)
                rescans += rerun_rows(qt, son[b], cand_index, k, doubtful, d, i)
                dist[b, ia:ib, ja:jb] = d.view(ib - ia, jb - ja, k)
                idx[b, ia:ib, ja:jb] = i.view(ib - ia, jb - ja, k)
    return dist.view(B, m1 * m2, k), idx.view(B, m1 * m2, k), SearchStats("faiss", "faiss", kp, rescans)


def _windowed_cpu(faiss, query: Tensor, son: Tensor, son_grid: tuple[int, int], side: int, graph_scale: int,
                   k: int, kp: int, centering: Centering, patch_size: int,
                   stride: int) -> tuple[Tensor, Tensor, SearchStats]:
    """CPU windowed search, one faiss search per tile of queries against the union of their windows.

    faiss returns the ``K`` nearest of the union; those outside a query's own window are dropped. Every
    candidate not shortlisted is either a returned one ranked after the ``(kp+1)``-th in-window hit, or was
    not returned (ranked after the K-th), which bounds its distance from below; rows with fewer than ``kp``
    in-window hits are not certified and are redone by the torch path.
    """
    B, _, H, W = query.shape
    (n1, n2), D = son_grid, son.shape[2]
    m1, m2 = grid_size(H, patch_size, stride), grid_size(W, patch_size, stride)
    gamma, delta = gemm_gamma(D, torch.float32), recompute_delta(D, query.dtype)
    th, tw = choose_tile((m1, m2), son_grid, side, graph_scale, D, centering=centering,
                         workers=torch.get_num_threads())
    rows = AxisTiles(window_starts(m1, n1, side, graph_scale, centering), n1, th, side)
    cols = AxisTiles(window_starts(m2, n2, side, graph_scale, centering), n2, tw, side)
    th, tw, ur, uc = rows.size, cols.size, rows.union, cols.union
    n_ret = min(ur * uc, 4 * kp)
    son_grid_t = son.view(B, n1, n2, D)
    dist = torch.empty((B, m1, m2, k), dtype=query.dtype)
    idx = torch.empty((B, m1, m2, k), dtype=torch.int64)
    uu_r, uu_c = torch.arange(ur), torch.arange(uc)
    rescans = [0] * len(rows.starts)

    def run_bands(bands: list[int]) -> None:
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)  # small searches: one thread each, the bands run in parallel instead
        try:
            for band_i in bands:
                _window_band(band_i)
        finally:
            faiss.omp_set_num_threads(threads)

    def _window_band(band_i: int) -> None:
        ia = rows.starts[band_i]
        band = im2patch_rows(query, ia, ia + th, patch_size, stride).view(B, th, m2, D)
        ra = int(rows.union_starts[band_i])
        for ct, ja in enumerate(cols.starts):
            ca = int(cols.union_starts[ct])
            row_in, col_in = rows.inside[band_i], cols.inside[ct]
            inside = (row_in[:, None, :, None] & col_in[None, :, None, :]).view(th * tw, -1)
            cand_index = ((ra + uu_r)[:, None] * n2 + (ca + uu_c)).view(-1)
            for b in range(B):
                qt = band[b, :, ja: ja + tw].reshape(-1, D)
                union = son_grid_t[b, ra: ra + ur, ca: ca + uc].reshape(-1, D)
                c = qt.mean(0)
                qc = qt - c
                d32, pos = faiss_search(faiss, qc.float(), (union - c).float(), n_ret)
                hit = inside.gather(1, pos)
                # in-window hits first, each group in faiss's order
                order = torch.sort((~hit).to(torch.int8), dim=1, stable=True).indices
                n_hit = hit.sum(1)
                short = pos.gather(1, order[:, :kp])
                nxt = d32.gather(1, order[:, kp: kp + 1]).squeeze(1)
                nxt = nxt.where(n_hit > kp, torch.tensor(float("inf")))
                if n_ret < ur * uc:
                    nxt = torch.minimum(nxt, d32[:, -1])
                excluded = excluded_lower_bound(nxt.to(query.dtype), qc.square().sum(1), gamma)
                excluded = excluded.masked_fill(n_hit < kp, -float("inf"))  # shortlist incomplete: redo
                d, i, doubtful = refine_shortlist(qt, son[b], cand_index[short], excluded, k, delta=delta)
                rescans[band_i] += rerun_rows(qt, son[b], cand_index, k, doubtful, d, i, inside=inside)
                dist[b, ia: ia + th, ja: ja + tw] = d.view(th, tw, k)
                idx[b, ia: ia + th, ja: ja + tw] = i.view(th, tw, k)

    parallel_bands(run_bands, len(rows.starts), query.device)
    return dist.view(B, m1 * m2, k), idx.view(B, m1 * m2, k), SearchStats("faiss", "faiss", kp, sum(rescans))


def _runs(starts: list[int]) -> list[tuple[int, int, int]]:
    """Maximal runs ``(a, b, start)`` of equal consecutive window starts."""
    runs, a = [], 0
    for i in range(1, len(starts) + 1):
        if i == len(starts) or starts[i] != starts[a]:
            runs.append((a, i, starts[a]))
            a = i
    return runs
