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

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ignn_lab.graph import kernels, knn_bf16
from ignn_lab.graph.knn_exact import (HEAP_MAX_ABS, HEAP_MAX_CANDIDATES, SHORTLIST_EXTRA, SearchStats, gemm_gamma,
                                      heap_select_ok, max_abs_within, recompute_delta, refine_topk,
                                      shortlist_size, workspace)
from ignn_lab.graph.knn_tiles import CHUNK_ELEMS, AxisTiles, TileChunk, choose_tile
from ignn_lab.graph.patches import calc_padding, grid_size, im2patch_rows
from ignn_lab.graph.window import Centering, window_starts
from ignn_lab.graph.workers import parallel_bands, thread_work

__all__ = ["ENGINES", "Engine", "EnginePlan", "GLOBAL_BLOCK_ELEMS", "SELECTIONS", "Selection", "global_search",
           "plan_engine", "rerun_rows", "windowed_search"]

Engine = Literal["auto", "torch", "c-float32", "c-bf16"]
#: Engines of the torch backend: ``c-bf16`` (C kernels, bfloat16 GEMM keys), ``c-float32`` (C kernels,
#: float32 GEMM bounds), ``torch`` (torch operations only); ``auto`` picks the fastest that applies.
ENGINES: tuple[str, ...] = ("auto", "torch", "c-float32", "c-bf16")
Selection = Literal["auto", "topk", "heap"]
#: Shortlist selection of the ``torch`` engine: ``torch.topk`` or faiss's heap (same results).
SELECTIONS: tuple[str, ...] = ("auto", "topk", "heap")

#: Elements of the (batch × query chunk × son) distance block of a global search (64 MiB in float32).
GLOBAL_BLOCK_ELEMS = 1 << 24
#: Chunks whose unions form at most this many strided runs read them as views; others gather them.
RUNS_AS_VIEWS = 4


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


@dataclass(frozen=True)
class EnginePlan:
    """Which engine runs a search, its shortlist length and, for bfloat16 keys, max |input|."""

    engine: str
    shortlist: int
    amax: float | None = None


def plan_engine(query: Tensor, son: Tensor, k: int, n_cand: int, *, engine: Engine = "auto",
                shortlist_extra: int | None = None) -> EnginePlan:
    """The engine of a torch-backend search: the C kernel with bfloat16 keys, the C kernel with float32
    bounds, or torch alone.

    ``auto`` picks the first that applies: ``c-bf16`` (float32 CPU inputs within ±``knn_bf16.MAX_ABS``,
    D ≥ ``knn_bf16.MIN_DIM``, a CPU with native bfloat16 whose GEMM meets the bounds' error model),
    ``c-float32`` (float32 CPU inputs within ±``HEAP_MAX_ABS``), ``torch``; both C engines need the kernels
    built and a shortlist of at most ``kernels.KP_MAX``. A named engine that does not apply is an error.

    Args:
        query, son: the search's inputs (their dtype, device and range decide). k: neighbours.
        n_cand: candidates a row is selected from. engine: ``auto`` or one of :data:`ENGINES`.
        shortlist_extra: candidates recomputed beyond k (default: 5 with bfloat16 keys, else 3).

    Raises:
        ValueError: an unknown engine, or a named one that cannot run these inputs (the message says why).
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    float32_extra = SHORTLIST_EXTRA if shortlist_extra is None else shortlist_extra
    if engine == "torch":
        return EnginePlan("torch", shortlist_size(k, n_cand, float32_extra))
    named = engine != "auto"
    why = ""
    if query.device.type != "cpu" or query.dtype != torch.float32:
        why = f"the C engines run float32 CPU tensors, got {query.dtype} on {query.device}"
    elif kernels.load() is None:
        why = kernels.status()
    if not why and (engine == "c-bf16" or (engine == "auto" and son.shape[2] >= knn_bf16.MIN_DIM)):
        kp = shortlist_size(k, n_cand, knn_bf16.SHORTLIST_EXTRA_BF16 if shortlist_extra is None else shortlist_extra)
        amax, why = knn_bf16.bf16_keys_check(query, son, son.shape[2])
        if amax is not None and kp > kernels.KP_MAX:
            why = f"a shortlist of {kp} exceeds the kernels' {kernels.KP_MAX}"
        if not why:
            return EnginePlan("c-bf16", kp, amax)
        if engine == "c-bf16":
            raise ValueError(f"engine 'c-bf16' cannot run this search: {why}")
        why = ""  # auto: try float32 bounds
    if not why:
        kp = shortlist_size(k, n_cand, float32_extra)
        if max_abs_within((query, son), HEAP_MAX_ABS) is None:
            why = f"inputs must be finite and within ±{HEAP_MAX_ABS:g}"
        elif kp > kernels.KP_MAX:
            why = f"a shortlist of {kp} exceeds the kernels' {kernels.KP_MAX}"
        else:
            return EnginePlan("c-float32", kp)
    if named:
        raise ValueError(f"engine {engine!r} cannot run this search: {why}")
    return EnginePlan("torch", shortlist_size(k, n_cand, float32_extra))


def _use_heap(selection: Selection, plan: EnginePlan, n_cand: int, query: Tensor, son: Tensor) -> bool:
    """Whether the torch engine shortlists with faiss's heap (``auto``: where it applies and rows are short)."""
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {', '.join(SELECTIONS)}; got {selection!r}")
    if plan.engine != "torch":
        if selection != "auto":
            raise ValueError(f"selection={selection!r} applies to engine 'torch'; the {plan.engine} engine "
                             "selects inside the C kernel")
        return False
    if selection == "topk":
        return False
    ok = heap_select_ok(query, son)
    if selection == "heap" and not ok:
        raise ValueError(f"selection='heap' needs faiss installed and float32 CPU inputs within "
                         f"±{HEAP_MAX_ABS:g}")
    return ok and (selection == "heap" or n_cand <= HEAP_MAX_CANDIDATES)


def windowed_search(query: Tensor, son: Tensor, son_grid: tuple[int, int], side: int | tuple[int, int],
                    graph_scale: int, k: int, *, centering: Centering = "corrected", patch_size: int = 3,
                    stride: int = 2, tile: int | tuple[int, int] | None = None, engine: Engine = "auto",
                    shortlist_extra: int | None = None, selection: Selection = "auto",
                    plan: EnginePlan | None = None,
                    runs_as_views: int = RUNS_AS_VIEWS) -> tuple[Tensor, Tensor, SearchStats]:
    """Exact kNN of every query patch within its square window of son patches.

    Args:
        query: B×C×H×W query embedding, float32 or float64 (patches are cut band by band).
        son: B×N×D son patch vectors (``im2patch`` layout, N = n1·n2), contiguous, same dtype and device.
        son_grid: (n1, n2). side: window side, 1 ≤ side ≤ min(n1, n2); or (rows, cols), e.g. (n1, n2) for a
            whole-image search (then ``tile`` is needed). graph_scale: g.
        k: neighbours, 1 ≤ k ≤ window size.
        tile: query-tile side, or (rows, cols); default :func:`~ignn_lab.graph.knn_tiles.choose_tile`.
        engine, shortlist_extra: see :func:`plan_engine`; ``plan``: its answer, when the caller has it.
        selection: the ``torch`` engine's shortlist selection (:data:`SELECTIONS`).
        runs_as_views: chunks whose unions form at most this many strided runs read them as views of the son,
            others gather them (same results; the views avoid a copy).

    Returns:
        dist: B×M×k ascending squared distances. idx: B×M×k int64 son indices (ties: lower index first).
        stats: what ran (:class:`~ignn_lab.graph.knn_exact.SearchStats`).
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
    plan = plan or plan_engine(query, son, k, ur * uc, engine=engine, shortlist_extra=shortlist_extra)
    mode, amax, kp = plan.engine, plan.amax, plan.shortlist
    heap = _use_heap(selection, plan, ur * uc, query, son)
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
        if len(ch.runs) <= runs_as_views:  # the unions, read straight from the son grid
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
            kernels.augment_union_bf16(son_flat, union_base=union_base, centre=centre, out=cand, union_rows=ur,
                                       union_cols=uc, son_cols=n2, shrink=1 - gamma, c1=knn_bf16.C1,
                                       up=knn_bf16.UP)
            q_aug = workspace(work, "q_keys", (g, th * tw, width), keys_like)
            row_term = workspace(work, "row_term", (g, th * tw), f64_like)
            kernels.augment_queries_bf16(q_cols, centre=centre, out=q_aug, row_term=row_term, shrink=1 - gamma,
                                         c1=knn_bf16.C1, up=knn_bf16.UP, kappa_up=knn_bf16.KAPPA_UP,
                                         t_split=knn_bf16.T_SPLIT)
            keys = torch.bmm(q_aug, cand.transpose(1, 2), out=workspace(work, "keys", (g, th * tw, ur * uc),
                                                                       keys_like))
            bounds = knn_bf16.bound_map(row_term, amax, width)
        else:
            keys = union_bounds(ch, q_cols, centre, work)
        rescans[ch_i] = kernels.refine_window(
            keys, row_start=rows.rel[band], col_start=cols.rel[ct], queries=q_cols, son=son_flat,
            union_base=union_base, out_base=out_base, son_off=b * N, dist=dist, idx=idx, union_rows=ur,
            union_cols=uc, win_rows=sr, win_cols=sc, son_cols=n2, out_cols=m2, shortlist=kp, delta=delta,
            bounds=bounds)

    def run_chunks(chunk_ids: list[int]) -> None:
        work = thread_work(dev)  # buffers reused from chunk to chunk and from search to search
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
            d, i, rescans[ch_i] = refine_topk(qt, son_flat, bound, cand_index.view(g, ur * uc), k, shortlist=kp,
                                              delta=delta, work=work, heap=heap)
            ia, ja = rows.query_starts[band], cols.query_starts[ct]
            out = (b * (m1 * m2))[:, None, None] + (ia[:, None, None] + ii[:, None]) * m2 + (ja[:, None, None] + jj)
            dist[out.view(-1)] = d.view(-1, k)
            idx[out.view(-1)] = (i - (b * N).view(-1, 1, 1)).view(-1, k)

    parallel_bands(run_chunks, len(chunks), dev)
    stats = SearchStats(mode, "kernel" if mode != "torch" else ("heap" if heap else "topk"), min(kp, sr * sc),
                        sum(rescans))
    return dist.view(B, m1 * m2, k), idx.view(B, m1 * m2, k), stats


#: Whole-image searches on CPU run, under ``engine="auto"``, as a "window" covering the son grid through the C
#: kernels (tiles of queries × all son patches) when D ≥ this or the work B·M·N·D reaches GLOBAL_KERNEL_MIN_WORK:
#: there the kernels beat the band path (and faiss) at every benchmark shape; only small 27-d searches (a ×2
#: training batch) were faster on the band path (docs/benchmarks.md).
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


def global_search(query: Tensor, son: Tensor, son_grid: tuple[int, int], k: int, *, patch_size: int = 3,
                  stride: int = 2, tile: int | tuple[int, int] | None = None, engine: Engine = "auto",
                  shortlist_extra: int | None = None,
                  selection: Selection = "auto") -> tuple[Tensor, Tensor, SearchStats]:
    """Exact kNN of every query patch among all son patches.

    With a C engine (named, or picked by ``auto`` for D ≥ :data:`GLOBAL_KERNEL_MIN_DIM` or large work) the
    search runs as one window covering the son grid, in query tiles of ``tile`` (default
    :data:`GLOBAL_TILE`, shrunk to bound the key matrix); otherwise in bands of query rows against every son
    patch, with the ``torch`` engine.

    Args:
        query: B×C×H×W query embedding, float32 or float64.
        son: B×N×D son patch vectors, contiguous, same dtype and device. son_grid: (n1, n2), N = n1·n2.
        k: neighbours, 1 ≤ k ≤ N.
        tile, engine, shortlist_extra, selection: as :func:`windowed_search`.

    Returns:
        dist: B×M×k ascending. idx: B×M×k int64 son indices (ties: lower index first). stats: what ran.
    """
    B, _, H, W = query.shape
    m1, m2 = grid_size(H, patch_size, stride), grid_size(W, patch_size, stride)
    N, D = son.shape[1], son.shape[2]
    plan = plan_engine(query, son, k, N, engine=engine, shortlist_extra=shortlist_extra)
    large = D >= GLOBAL_KERNEL_MIN_DIM or B * m1 * m2 * N * D >= GLOBAL_KERNEL_MIN_WORK
    if plan.engine != "torch" and (engine != "auto" or large):
        if tile is None:
            tile = _global_tile(m1, m2, N)
        return windowed_search(query, son, son_grid, son_grid, 1, k, patch_size=patch_size, stride=stride,
                               tile=tile, plan=plan, selection=selection)
    if plan.engine != "torch":
        plan = plan_engine(query, son, k, N, engine="torch", shortlist_extra=shortlist_extra)
    gamma, delta = gemm_gamma(D, query.dtype), recompute_delta(D, query.dtype)
    heap = _use_heap(selection, plan, N, query, son)
    # a band's bound matrix stays within GLOBAL_BLOCK_ELEMS; its shortlist (kp·D per query) within CHUNK_ELEMS or
    # the son (B·N·D, centred once per band anyway), whichever is larger: small searches then work in cache-sized
    # pieces instead of page-faulting a fresh buffer of every query's shortlist
    rows_bound = GLOBAL_BLOCK_ELEMS // max(1, B * m2 * N)
    rows_short = max(CHUNK_ELEMS, B * N * D) // max(1, B * m2 * shortlist_size(k, N) * D)
    band_rows = max(1, min(m1, rows_bound, rows_short))
    son_flat = son.reshape(B * N, D)
    cand_index = torch.arange(B * N, device=son.device).view(B, N)
    work: dict[str, Tensor] = {}
    dist = torch.empty((B, m1 * m2, k), dtype=query.dtype, device=query.device)
    idx = torch.empty((B, m1 * m2, k), dtype=torch.int64, device=query.device)
    rescans = 0
    for ia in range(0, m1, band_rows):
        ib = min(ia + band_rows, m1)
        band = im2patch_rows(query, ia, ib, patch_size, stride)  # B×L×D
        centre = band.mean(1)
        aug = _augment_candidates(son, centre, gamma, workspace(work, "aug_son", (B, N, D + 2), son))
        bound = _lower_bounds(band, centre, aug, gamma, work=work)
        d, i, redone = refine_topk(band, son_flat, bound, cand_index, k, shortlist=plan.shortlist, delta=delta,
                                   work=work, heap=heap)
        dist[:, ia * m2: ib * m2], idx[:, ia * m2: ib * m2] = d, i - cand_index[:, :1, None]
        rescans += redone
    return dist, idx, SearchStats("torch", "heap" if heap else "topk", plan.shortlist, rescans)


def rerun_rows(q: Tensor, son: Tensor, cand_index: Tensor | None, k: int, rows: Tensor, dist: Tensor,
               idx: Tensor, *, inside: Tensor | None = None) -> int:
    """Redo the rows flagged in ``rows`` (R bool) with the torch path, writing into ``dist``/``idx`` (R×k).

    Candidates are ``son[cand_index]`` (increasing son indices), or all of ``son`` if ``cand_index`` is None;
    ``inside`` (R×Nc bool) restricts each row to its own window among them. Returns the number of rows redone.
    """
    sel = rows.nonzero().squeeze(1)
    if not sel.numel():
        return 0
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
        d, i, _ = refine_topk(qr, son, bound, cand_index.unsqueeze(0), k, shortlist=shortlist_size(k, cand.shape[0]),
                              delta=delta)
        dist[part], idx[part] = d[0], i[0]
    return int(sel.numel())
