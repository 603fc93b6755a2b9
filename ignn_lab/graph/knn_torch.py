"""The ``torch`` backend of :func:`ignn_lab.graph.cross_scale_knn`: exact, tiled, device-agnostic.

Windowed search: the query grid is cut into tiles (:mod:`~ignn_lab.graph.knn_tiles`). Window
starts are monotone in the query position (:func:`~ignn_lab.graph.window.window_starts`), so the windows of
a tile together cover one small rectangle of the son grid, the tile's *union*. Each tile's queries are
multiplied (one GEMM per tile, tiles processed in chunks) against its union only, so memory is bounded by the
chunk, never by the M×N matrix; candidates outside a query's own window are masked. Bands of tiles are spread
over worker threads (:func:`parallel_bands`). Global search: chunks of query rows against all son patches.

Both feed :func:`~ignn_lab.graph.knn_exact.refine_topk` (centred GEMM → lower bounds → exact recompute →
certification → fallback), so results are exact and ties go to the lower son index.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F
from torch import Tensor

from ignn_lab.graph import kernels, knn_bf16
from ignn_lab.graph.knn_exact import (HEAP_MAX_ABS, HEAP_MAX_CANDIDATES, SHORTLIST_EXTRA, gemm_gamma,
                                      heap_select_ok, max_abs_within, recompute_delta, refine_topk,
                                      shortlist_size, workspace)
from ignn_lab.graph.patches import calc_padding, grid_size, im2patch_rows
from ignn_lab.graph.knn_tiles import CHUNK_ELEMS, AxisTiles, TileChunk, choose_tile
from ignn_lab.graph.window import Centering, window_starts

__all__ = ["windowed_search", "global_search", "rerun_rows", "parallel_bands", "GLOBAL_BLOCK_ELEMS", "HEAP_SELECT"]

#: Elements of the (batch × query chunk × son) distance block of a global search (64 MiB in float32).
GLOBAL_BLOCK_ELEMS = 1 << 24
#: Chunks whose unions form at most this many strided runs read them as views; others gather them.
RUNS_AS_VIEWS = 4
#: Shortlist with faiss's C++ heap selection instead of ``torch.topk`` where it applies (float32 on CPU, faiss
#: installed; :func:`~ignn_lab.graph.knn_exact.heap_select_ok`). Same results either way.
HEAP_SELECT = True


def _augment_candidates(cand: Tensor, centre: Tensor, gamma: float, out: Tensor) -> Tensor:
    """Fill ``out`` (G×Nc×(D+2)) with ``[−2(s − c), (1−γ)‖s − c‖², 1]`` for G groups of candidates.

    Args:
        cand: G×...×D candidates (any strides, e.g. a strided view of the son grid; ... flattens to Nc).
        centre: G×D, the centre ``c`` of each group.
    """
    G, D = out.shape[0], out.shape[2] - 2
    body = out[..., :D]
    c2 = (2 * centre).view(G, *([1] * (cand.dim() - 2)), D)
    torch.add(c2, cand, alpha=-2, out=body.view(cand.shape))  # 2c − 2s = −2(s − c), exactly
    out[..., D] = torch.linalg.vector_norm(body, dim=2).square_().mul_((1 - gamma) / 4)
    out[..., D + 1] = 1
    return out


def _lower_bounds(q: Tensor, centre: Tensor, cand_aug: Tensor, gamma: float, *, work: dict | None = None,
                  columns: bool = False) -> Tensor:
    """G×R×Nc lower bounds ``(1−γ)(‖q−c‖² + ‖s−c‖²) − 2(q−c)·(s−c)`` of squared distances, one GEMM per group.

    The norms ride inside the GEMM as two extra coordinates (``[q−c, 1, (1−γ)‖q−c‖²]`` against the
    :func:`_augment_candidates` rows), so no extra pass over the G×R×Nc result is needed.

    Args:
        q: G×R×D queries (G×D×R with ``columns``). centre: G×D, the centre each group was shifted by.
        cand_aug: G×Nc×(D+2) from :func:`_augment_candidates` with the same centres.
        gamma: :func:`~ignn_lab.graph.knn_exact.gemm_gamma` for D and the dtype.
        work: reusable buffers (:func:`~ignn_lab.graph.knn_exact.workspace`).
    """
    G, D = q.shape[0], centre.shape[1]
    R = q.shape[2] if columns else q.shape[1]
    if columns:
        aug = workspace(work, "aug_q", (G, D + 2, R), q)
        torch.sub(q, centre.unsqueeze(2), out=aug[:, :D])
        aug[:, D] = 1
        torch.sum(aug[:, :D].square(), dim=1, out=aug[:, D + 1])  # over an outer dim: fast as a plain sum
        aug[:, D + 1].mul_(1 - gamma)
        rows = aug.transpose(1, 2)
    else:
        rows = workspace(work, "aug_q", (G, R, D + 2), q)
        torch.sub(q, centre.unsqueeze(1), out=rows[..., :D])
        rows[..., D] = 1
        rows[..., D + 1] = torch.linalg.vector_norm(rows[..., :D], dim=2).square_().mul_(1 - gamma)
    bound = workspace(work, "bound", (G, R, cand_aug.shape[1]), q)
    return torch.bmm(rows, cand_aug.transpose(1, 2), out=bound)


def _band_tiles(query: Tensor, ia: int, th: int, tw: int, col_starts: list[int], patch_size: int,
                stride: int) -> Tensor:
    """The query patches of grid rows ``ia..ia+th-1``, tile by tile, as columns: (B·n_tiles)×D×(th·tw).

    One strided gather from the (zero-padded) band of image rows; vectors are ordered (c, py, px) as in
    :func:`~ignn_lab.graph.patches.im2patch`, whose padding rule is applied.
    """
    B, C, H, W = query.shape
    top, _ = calc_padding(H, patch_size, stride)
    left, right = calc_padding(W, patch_size, stride)
    a, b = ia * stride - top, (ia + th - 1) * stride + patch_size - top  # image rows the band needs
    band = query[:, :, max(a, 0): min(b, H)]
    pads = (left, right, max(0, -a), max(0, b - H))
    if any(pads):
        band = F.pad(band, pads)
    sb, sc, sh, sw = band.stride()
    m2 = (band.shape[3] - patch_size) // stride + 1
    n_reg, n_t = m2 // tw, len(col_starts)  # tiles at multiples of tw; a last, overlapping one at m2 - tw
    out = torch.empty((B, n_t, C, patch_size, patch_size, th, tw), dtype=query.dtype, device=query.device)
    geometry = (sc, sh, sw, stride * sh, stride * sw)
    out[:, :n_reg].copy_(band.as_strided((B, n_reg, C, patch_size, patch_size, th, tw),
                                         (sb, stride * tw * sw) + geometry, band.storage_offset()))
    if n_t > n_reg:
        out[:, n_reg].copy_(band.as_strided((B, C, patch_size, patch_size, th, tw), (sb,) + geometry,
                                            band.storage_offset() + stride * (m2 - tw) * sw))
    return out.view(B * n_t, C * patch_size * patch_size, th * tw)


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
_LOCAL = threading.local()


def _thread_work(device: torch.device) -> dict[str, Tensor]:
    """The calling thread's reusable CPU buffers, kept between windowed searches (a few MiB each: chunks are
    bounded by ``CHUNK_ELEMS``), so that repeated searches do not page-fault fresh buffers (measured: ≈2,000
    page faults and 3–5 ms of kernel time per ignn-lite graph). Other devices get a fresh dict."""
    if device.type != "cpu":
        return {}
    # buffers made under inference mode are inference tensors, which may not be written outside it: one set each
    name = "work_inference" if torch.is_inference_mode_enabled() else "work"
    work = getattr(_LOCAL, name, None)
    if work is None:
        work = {}
        setattr(_LOCAL, name, work)
    return work


def _worker_pool(n: int) -> ThreadPoolExecutor:
    """A process-wide pool of at least ``n`` threads, kept between calls: fresh threads would pay for thread
    start-up and fresh allocator arenas (thousands of page faults per search) every time."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL._max_workers < n:
            _POOL = ThreadPoolExecutor(max_workers=n, thread_name_prefix="ignn-lab-knn")
        return _POOL


def parallel_bands(fn, n_bands: int, device: torch.device) -> None:
    """Call ``fn(parts)`` on disjoint runs of consecutive part numbers (bands, chunks), one per torch CPU
    thread; consecutive, so that work a worker shares between neighbouring parts (a band's query patches) is
    done once.

    A windowed search is thousands of small operations; intra-op threading scales them poorly (and collapses
    when the CPU is shared), so on CPU each of ``torch.get_num_threads()`` threads (the caller and pooled
    workers) runs its own parts single-threaded (torch releases the GIL inside operations). The thread count
    is per OS thread in PyTorch's OpenMP/MKL builds; the caller's setting is restored after.
    """
    n = min(torch.get_num_threads(), n_bands) if device.type == "cpu" else 1
    if n <= 1:
        fn(list(range(n_bands)))
        return
    restore = torch.get_num_threads()
    inference = torch.is_inference_mode_enabled()  # thread-local: carry the caller's mode into the workers

    def share(w: int) -> None:
        torch.set_num_threads(1)
        with torch.inference_mode(inference):
            fn(list(range(w * n_bands // n, (w + 1) * n_bands // n)))

    try:
        futures = [_worker_pool(n - 1).submit(share, w) for w in range(1, n)]
        share(0)
        for f in futures:
            f.result()
    finally:
        torch.set_num_threads(restore)


#: Engine of windowed search on CPU: "auto" (the fastest that applies), or "torch", "c-float32", "c-bf16" to
#: force one where it applies (tests and benchmarks; :data:`LAST_SEARCH` says what ran).
ENGINE = "auto"
#: What the last windowed search in this process ran: ``mode`` ("c-bf16", "c-float32" or "torch"), query
#: ``rows``, ``rescans`` (rows the shortlist did not certify; C modes only) and ``shortlist`` length.
LAST_SEARCH: dict = {}


def _windowed_mode(query: Tensor, son: Tensor, k: int, n_cand: int) -> tuple[str, float | None, int]:
    """Which engine runs a windowed search: the C kernel with bfloat16 keys, the C kernel with float32
    bounds, or torch alone; with max |input| (bfloat16 keys) and the shortlist length."""
    if ENGINE not in ("auto", "torch", "c-float32", "c-bf16"):
        raise ValueError(f"ENGINE must be auto, torch, c-float32 or c-bf16; got {ENGINE!r}")
    cpu32 = query.device.type == "cpu" and query.dtype == torch.float32
    if ENGINE != "torch" and cpu32 and kernels.load() is not None:
        amax = knn_bf16.bf16_keys_ok(query, son, son.shape[2]) if ENGINE != "c-float32" else None
        if amax is not None and k + knn_bf16.SHORTLIST_EXTRA_BF16 <= kernels.KP_MAX:
            return "c-bf16", amax, shortlist_size(k, n_cand, knn_bf16.SHORTLIST_EXTRA_BF16)
        finite = max_abs_within((query, son), HEAP_MAX_ABS) is not None
        if shortlist_size(k, n_cand) <= kernels.KP_MAX and finite:
            return "c-float32", None, shortlist_size(k, n_cand)
    return "torch", None, shortlist_size(k, n_cand)


def windowed_search(query: Tensor, son: Tensor, son_grid: tuple[int, int], side: int | tuple[int, int],
                    graph_scale: int,
                    k: int, *, centering: Centering = "corrected", patch_size: int = 3, stride: int = 2,
                    tile: int | tuple[int, int] | None = None,
                    engine: tuple[str, float | None, int] | None = None) -> tuple[Tensor, Tensor]:
    """Exact kNN of every query patch within its square window of son patches.

    Args:
        query: B×C×H×W query embedding, float32 or float64 (patches are cut band by band).
        son: B×N×D son patch vectors (``im2patch`` layout, N = n1·n2), contiguous, same dtype and device.
        son_grid: (n1, n2). side: window side, 1 ≤ side ≤ min(n1, n2); or (rows, cols), e.g. (n1, n2) for a
            whole-image search (then ``tile`` is needed). graph_scale: g.
        k: neighbours, 1 ≤ k ≤ window size.
        tile: query-tile side, or (rows, cols); default :func:`~ignn_lab.graph.knn_tiles.choose_tile`.
        engine: :func:`_windowed_mode`'s answer when the caller already has it.

    Returns:
        dist: B×M×k ascending squared distances. idx: B×M×k int64 son indices (ties: lower index first).
    """
    B, _, H, W = query.shape
    (n1, n2), N, D = son_grid, son.shape[1], son.shape[2]
    m1, m2 = grid_size(H, patch_size, stride), grid_size(W, patch_size, stride)
    dev, dtype = query.device, query.dtype
    if tile is None:
        workers = torch.get_num_threads() if dev.type == "cpu" else 1
        if not isinstance(side, int):
            raise ValueError("a rectangular window needs an explicit tile")
        tile = choose_tile((m1, m2), son_grid, side, graph_scale, D, centering=centering, workers=workers)
    th, tw = (tile, tile) if isinstance(tile, int) else tile
    sr, sc = (side, side) if isinstance(side, int) else side
    gamma, delta = gemm_gamma(D, dtype), recompute_delta(D, dtype)
    rows = AxisTiles(window_starts(m1, n1, sr, graph_scale, centering, dev), n1, min(th, m1), sr, dtype)
    cols = AxisTiles(window_starts(m2, n2, sc, graph_scale, centering, dev), n2, min(tw, m2), sc, dtype)
    th, tw, ur, uc = rows.size, cols.size, rows.union, cols.union
    mode, amax, kp = engine or _windowed_mode(query, son, k, ur * uc)
    heap = mode == "torch" and HEAP_SELECT and ur * uc <= HEAP_MAX_CANDIDATES and heap_select_ok(query, son)
    width = knn_bf16.key_width(D)
    if mode == "c-bf16":
        gamma = knn_bf16.bf16_gamma(D, width)
        keys_like, f64_like = torch.empty(0, dtype=torch.bfloat16), torch.empty(0, dtype=torch.float64)
    son_flat = son.reshape(B * N, D)
    dist = torch.empty((B * m1 * m2, k), dtype=dtype, device=dev)
    idx = torch.empty((B * m1 * m2, k), dtype=torch.int64, device=dev)
    n_ct, per_band = len(cols.starts), B * len(cols.starts)
    n_tiles = len(rows.starts) * per_band
    # a chunk may span bands: small problems run as a few large operations instead of many small ones
    step = max(1, CHUNK_ELEMS // (ur * uc * (2 * D + th * tw) + th * tw * D * (k + SHORTLIST_EXTRA + 3)))
    col_union_starts = cols.union_starts.tolist()
    chunks = [TileChunk(range(a, min(a + step, n_tiles)), n_ct, B, col_union_starts)
              for a in range(0, n_tiles, step)]
    jj, ii = torch.arange(tw, device=dev), torch.arange(th, device=dev)
    uu_r, uu_c = torch.arange(ur, device=dev), torch.arange(uc, device=dev)
    rescans = [0] * len(chunks)

    def band_queries(band_i: int, cache: dict) -> Tensor:
        if cache.get("band") != band_i:  # a worker's chunks are consecutive: each band is cut once
            cache["band"] = band_i
            cache["tiles"] = _band_tiles(query, rows.starts[band_i], th, tw, cols.starts, patch_size, stride)
        return cache["tiles"]  # (B·n_ct)×D×Tq

    def chunk_queries(ch: TileChunk, cache: dict) -> Tensor:
        parts = []
        for band_i in ch.bands:
            lo = max(ch.first, band_i * per_band) - band_i * per_band
            hi = min(ch.first + ch.size, (band_i + 1) * per_band) - band_i * per_band
            parts.append(band_queries(band_i, cache)[lo:hi])
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def union_bounds(ch: TileChunk, q_cols: Tensor, centre: Tensor, work: dict) -> Tensor:
        """g×R×Nc lower bounds (input dtype) of the chunk's tiles against their unions, no window mask."""
        g, band, b, ct = ch.size, ch.band.to(dev), ch.batch.to(dev), ch.col_tile.to(dev)
        cand_aug = workspace(work, "cand_aug", (g, ur * uc, D + 2), query)
        if len(ch.runs) <= RUNS_AS_VIEWS:  # the unions, read straight from the son grid
            for pos, length, band_i, bb, ca0, step_c in ch.runs:
                r0 = int(rows.union_starts[band_i])
                view = son.as_strided((length, ur, uc, D), (step_c * D, n2 * D, D, 1),
                                      son.storage_offset() + (bb * N + r0 * n2 + ca0) * D)
                _augment_candidates(view, centre[pos: pos + length], gamma, cand_aug[pos: pos + length])
        else:  # many short runs: one gather
            ra, ca = rows.union_starts[band], cols.union_starts[ct]
            index = (b * N)[:, None, None] + (ra[:, None, None] + uu_r[:, None]) * n2 + (ca[:, None, None] + uu_c)
            cand = workspace(work, "union", (g * ur * uc, D), son_flat)
            torch.index_select(son_flat, 0, index.view(-1), out=cand)
            _augment_candidates(cand.view(g, ur * uc, D), centre, gamma, cand_aug)
        return _lower_bounds(q_cols, centre, cand_aug, gamma, work=work, columns=True)

    def run_kernel(ch_i: int, ch: TileChunk, q_cols: Tensor, centre: Tensor, work: dict) -> None:
        """The fused C kernel: shortlist, exact re-rank and certification, written straight into the result."""
        g, band, b, ct = ch.size, ch.band, ch.batch, ch.col_tile  # CPU only
        union_base = b * N + rows.union_starts[band] * n2 + cols.union_starts[ct]
        out_base = b * (m1 * m2) + rows.query_starts[band] * m2 + cols.query_starts[ct]
        bounds = None
        if mode == "c-bf16":
            cand = workspace(work, "cand_keys", (g, ur * uc, width), keys_like)
            kernels.augment_union_bf16(son_flat, n2, (ur, uc), union_base, centre, 1 - gamma, knn_bf16.C1,
                                       knn_bf16.UP, cand)
            q_aug = workspace(work, "q_keys", (g, th * tw, width), keys_like)
            row_term = workspace(work, "row_term", (g, th * tw), f64_like)
            kernels.augment_queries_bf16(q_cols, centre, 1 - gamma, knn_bf16.C1, knn_bf16.UP, knn_bf16.KAPPA_UP,
                                         knn_bf16.T_SPLIT, q_aug, row_term)
            keys = torch.bmm(q_aug, cand.transpose(1, 2), out=workspace(work, "keys", (g, th * tw, ur * uc),
                                                                       keys_like))
            bounds = knn_bf16.bound_map(row_term, amax, width)
        else:
            keys = union_bounds(ch, q_cols, centre, work)
        rescans[ch_i] = kernels.refine_window(
            keys, rows.rel[band], cols.rel[ct], (sr, sc), q_cols, son_flat, n2, union_base, k, kp, delta, dist, idx, m2,
            out_base, b * N, union=(ur, uc), bounds=bounds)

    def run_chunks(chunk_ids: list[int]) -> None:
        work = _thread_work(dev)  # buffers reused from chunk to chunk and from search to search
        cache: dict = {}
        for ch_i in chunk_ids:
            ch = chunks[ch_i]
            q_cols = chunk_queries(ch, cache)
            centre = q_cols.mean(2)  # g×D: each tile's centre
            if mode != "torch":
                run_kernel(ch_i, ch, q_cols, centre, work)
                continue
            g, band, b, ct = ch.size, ch.band.to(dev), ch.batch.to(dev), ch.col_tile.to(dev)
            bound = union_bounds(ch, q_cols, centre, work)
            # candidates outside a query's window: +inf (two broadcast adds; faster than building a mask)
            grid = bound.view(g, th, tw, ur, uc)
            grid.add_(rows.penalty[band][:, :, None, :, None]).add_(cols.penalty[ct][:, None, :, None, :])
            ra, ca = rows.union_starts[band], cols.union_starts[ct]
            cand_index = (b * N)[:, None, None] + (ra[:, None, None] + uu_r[:, None]) * n2 + (ca[:, None, None] + uu_c)
            qt = workspace(work, "rows", (g, th * tw, D), q_cols).copy_(q_cols.transpose(1, 2))
            d, i = refine_topk(qt, son_flat, bound, cand_index.view(g, ur * uc), k, delta=delta, work=work,
                               heap=heap)
            ia, ja = rows.query_starts[band], cols.query_starts[ct]
            out = (b * (m1 * m2))[:, None, None] + (ia[:, None, None] + ii[:, None]) * m2 + (ja[:, None, None] + jj)
            dist[out.view(-1)] = d.view(-1, k)
            idx[out.view(-1)] = (i - (b * N).view(-1, 1, 1)).view(-1, k)

    parallel_bands(run_chunks, len(chunks), dev)
    LAST_SEARCH.update(mode=mode, rows=B * m1 * m2, rescans=sum(rescans), shortlist=kp)
    return dist.view(B, m1 * m2, k), idx.view(B, m1 * m2, k)


#: Whole-image searches on CPU run as a "window" covering the son grid through the C kernels (tiles of queries ×
#: all son patches, no union waste) when D ≥ this or the work B·M·N·D reaches GLOBAL_KERNEL_MIN_WORK; measured
#: on the benchmark's shapes: Urban100 ×2 576-d 2.4 s (faiss 6.3–7.3 s, the band path 7.4 s), 27-d 0.75–0.85 s
#: (band path 0.95 s), ×2 training batch 576-d 0.04–0.05 s (band path 0.07 s); but 27-d training batch 0.017 s
#: against the band path's 0.010 s.
GLOBAL_KERNEL_MIN_DIM = 64
GLOBAL_KERNEL_MIN_WORK = 1 << 30
#: Query tile of that route, shrunk until a tile's key matrix (tile × N) has at most GLOBAL_TILE_ELEMS entries.
GLOBAL_TILE = (24, 32)
GLOBAL_TILE_ELEMS = 1 << 23


def _global_tile(m1: int, m2: int, n: int) -> tuple[int, int]:
    th, tw = min(GLOBAL_TILE[0], m1), min(GLOBAL_TILE[1], m2)
    while th * tw * n > GLOBAL_TILE_ELEMS and th * tw > 1:
        if th >= tw:
            th = max(1, th // 2)
        else:
            tw = max(1, tw // 2)
    return th, tw


def global_search(query: Tensor, son: Tensor, k: int, *, patch_size: int = 3, stride: int = 2,
                  son_grid: tuple[int, int] | None = None) -> tuple[Tensor, Tensor]:
    """Exact kNN of every query patch among all son patches.

    Args:
        query: B×C×H×W query embedding, float32 or float64.
        son: B×N×D son patch vectors, contiguous, same dtype and device.
        k: neighbours, 1 ≤ k ≤ N.
        son_grid: (n1, n2), enables the C-kernel route on CPU (:data:`GLOBAL_KERNEL_MIN_DIM`).

    Returns:
        dist: B×M×k ascending. idx: B×M×k int64 son indices (ties: lower index first).
    """
    B, _, H, W = query.shape
    m1, m2 = grid_size(H, patch_size, stride), grid_size(W, patch_size, stride)
    N, D = son.shape[1], son.shape[2]
    if son_grid is not None and (D >= GLOBAL_KERNEL_MIN_DIM or B * m1 * m2 * N * D >= GLOBAL_KERNEL_MIN_WORK):
        engine = _windowed_mode(query, son, k, N)
        if engine[0] != "torch":
            return windowed_search(query, son, son_grid, son_grid, 1, k, patch_size=patch_size, stride=stride,
                                   tile=_global_tile(m1, m2, N), engine=engine)
    LAST_SEARCH.clear()
    gamma, delta = gemm_gamma(D, query.dtype), recompute_delta(D, query.dtype)
    heap = HEAP_SELECT and N <= HEAP_MAX_CANDIDATES and heap_select_ok(query, son)
    # a band's bound matrix stays within GLOBAL_BLOCK_ELEMS; its shortlist (kp·D per query) within CHUNK_ELEMS or
    # the son (B·N·D, centred once per band anyway), whichever is larger: small searches then work in cache-sized
    # pieces instead of page-faulting a fresh buffer of every query's shortlist (1.8× faster on a ×2 training batch)
    rows_bound = GLOBAL_BLOCK_ELEMS // max(1, B * m2 * N)
    rows_short = max(CHUNK_ELEMS, B * N * D) // max(1, B * m2 * shortlist_size(k, N) * D)
    band_rows = max(1, min(m1, rows_bound, rows_short))
    son_flat = son.reshape(B * N, D)
    cand_index = torch.arange(B * N, device=son.device).view(B, N)
    work: dict[str, Tensor] = {}
    dist = torch.empty((B, m1 * m2, k), dtype=query.dtype, device=query.device)
    idx = torch.empty((B, m1 * m2, k), dtype=torch.int64, device=query.device)
    for ia in range(0, m1, band_rows):
        ib = min(ia + band_rows, m1)
        band = im2patch_rows(query, ia, ib, patch_size, stride)  # B×L×D
        centre = band.mean(1)
        aug = _augment_candidates(son, centre, gamma, workspace(work, "aug_son", (B, N, D + 2), son))
        bound = _lower_bounds(band, centre, aug, gamma, work=work)
        d, i = refine_topk(band, son_flat, bound, cand_index, k, delta=delta, work=work, heap=heap)
        dist[:, ia * m2: ib * m2], idx[:, ia * m2: ib * m2] = d, i - cand_index[:, :1, None]
    return dist, idx


def rerun_rows(q: Tensor, son: Tensor, cand_index: Tensor | None, k: int, rows: Tensor, dist: Tensor,
               idx: Tensor, *, inside: Tensor | None = None) -> None:
    """Redo the rows flagged in ``rows`` (R bool) with the torch path, writing into ``dist``/``idx`` (R×k).

    Candidates are ``son[cand_index]`` (increasing son indices), or all of ``son`` if ``cand_index`` is None;
    ``inside`` (R×Nc bool) restricts each row to its own window among them.
    """
    if not bool(rows.any()):
        return
    sel = rows.nonzero().squeeze(1)
    if cand_index is None:
        cand_index = torch.arange(son.shape[0], device=son.device)
    cand = son.index_select(0, cand_index)
    D = q.shape[1]
    gamma, delta = gemm_gamma(D, q.dtype), recompute_delta(D, q.dtype)
    step = max(1, GLOBAL_BLOCK_ELEMS // max(1, cand.shape[0]))
    for a in range(0, sel.numel(), step):
        part = sel[a: a + step]
        qr = q.index_select(0, part).unsqueeze(0)
        centre = qr.mean(1)
        aug = _augment_candidates(cand.unsqueeze(0), centre, gamma, cand.new_empty((1, cand.shape[0], D + 2)))
        bound = _lower_bounds(qr, centre, aug, gamma)
        if inside is not None:
            bound.masked_fill_(~inside[part].unsqueeze(0), float("inf"))
        d, i = refine_topk(qr, son, bound, cand_index.unsqueeze(0), k, delta=delta)
        dist[part], idx[part] = d[0], i[0]
