"""Cross-scale kNN: for every LR (query) patch, its k nearest patches in the son image (spec §4).

:func:`cross_scale_knn` is the public entry point. Backends (all exact, all with the same tie rule):

* ``reference``: explicit differences against every candidate; slow and obviously correct.
* ``torch``: tiled GEMM shortlists + exact re-ranking (:mod:`~ignn_lab.graph.knn_torch`), CPU and CUDA.
* ``faiss``: faiss shortlists + the same re-ranking (:mod:`~ignn_lab.graph.knn_faiss`); optional dependency.
* ``auto``: ``torch`` for windowed search; for whole-image search on CPU ``torch`` when its C kernels are built
  (:mod:`~ignn_lab.graph.kernels`; measured faster than faiss at every benchmark shape), otherwise ``faiss``
  when it imports and the work per image (queries × son patches × D) reaches :data:`AUTO_FAISS_MIN_WORK`
  (measured crossover, ``docs/benchmarks.md``), else ``torch``. On a GPU, ``faiss`` only with a faiss-gpu build.

The torch backend has engines (:data:`~ignn_lab.graph.knn_torch.ENGINES`: the C kernels with bfloat16 or
float32 GEMM keys, or torch alone); ``engine="auto"`` picks the fastest that applies. What a call computes
depends only on its arguments; what ran (backend, engine, selection, shortlist, rescans) comes back in the
:class:`CrossScaleGraph`.

Distances are squared L2 between patch vectors, computed as ``Σ (q − s)²`` by the same function in every
backend (:func:`~ignn_lab.graph.knn_exact.exact_sqdist`), so the backends agree bit for bit. Ties go to the
lower son index: candidates are always ranked by a stable sort in increasing son-index order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ignn_lab.graph import kernels, knn_faiss, knn_torch
from ignn_lab.graph.faiss_ops import faiss_available, faiss_has_gpu, load_faiss
from ignn_lab.graph.knn_exact import SearchStats, exact_sqdist
from ignn_lab.graph.knn_torch import ENGINES, SELECTIONS, Engine, Selection
from ignn_lab.graph.patches import calc_padding, grid_size, im2patch, im2patch_rows
from ignn_lab.graph.window import Centering, effective_window, window_table

Backend = Literal["auto", "torch", "reference", "faiss"]
BACKENDS: tuple[str, ...] = ("auto", "torch", "reference", "faiss")
#: ``auto`` uses faiss for a whole-image CPU search when queries × son patches × D per image reaches this
#: (measured crossover, docs/benchmarks.md: below it the torch path's lower overhead wins; above it faiss's
#: fused GEMM + heap selection is faster).
AUTO_FAISS_MIN_WORK = 1 << 27
#: ... and only for patch vectors of at least this many dimensions: without the C kernels the torch path was
#: faster than faiss for 27-d patches at every size, faiss faster for 576-d ones (docs/benchmarks.md).
AUTO_FAISS_MIN_DIM = 64

__all__ = ["AUTO_FAISS_MIN_DIM", "AUTO_FAISS_MIN_WORK", "BACKENDS", "Backend", "CrossScaleGraph", "ENGINES", "Engine",
           "SELECTIONS", "Selection", "cross_scale_knn", "knn_reference", "resolve_backend"]


@dataclass
class CrossScaleGraph:
    """Result of :func:`cross_scale_knn`.

    Attributes:
        index: B×M×k int64, flat row-major son-grid indices, nearest first.
        distance: B×M×k, squared L2 (the query's dtype), ascending.
        query_grid: (m1, m2), the query patch grid (M = m1·m2, row-major).
        son_grid: (n1, n2), the son patch grid.
        padding: (top, bottom, left, right) zero padding applied to the query before patch extraction.
        son_padding: the same for the son.
        window: the effective square window side, or None when the search was global.
        backend: the backend that ran (``torch``, ``faiss`` or ``reference``; never ``auto``).
        note: why ``auto`` chose that backend (e.g. ``faiss not installed``); empty for an explicit choice.
        engine: what computed the result: ``c-bf16``, ``c-float32`` or ``torch`` (torch backend), ``faiss``,
            ``reference``; never ``auto``.
        selection: how shortlists were picked: ``kernel``, ``heap``, ``topk``, ``faiss``; ``none`` for the
            reference, which computes every distance.
        shortlist: candidates recomputed exactly per row (None for the reference).
        rescans: rows whose shortlist was not certified and that were searched again exactly (None for the
            reference).
    """

    index: Tensor
    distance: Tensor
    query_grid: tuple[int, int]
    son_grid: tuple[int, int]
    padding: tuple[int, int, int, int]
    son_padding: tuple[int, int, int, int]
    window: int | None
    graph_scale: int
    patch_size: int
    stride: int
    backend: str
    note: str = ""
    engine: str = "reference"
    selection: str = "none"
    shortlist: int | None = None
    rescans: int | None = None


def _stable_topk(dist: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """k smallest along the last dim, ties to the lower position (candidates must be in index order)."""
    d, pos = torch.sort(dist, dim=-1, stable=True)
    return d[..., :k], pos[..., :k]


def knn_reference(q: Tensor, s: Tensor, k: int, table: Tensor | None,
                  chunk_elems: int = 1 << 24) -> tuple[Tensor, Tensor]:
    """Exact kNN by explicit differences against every candidate (slow, simple, obviously correct).

    Args:
        q: B×M×D query vectors. s: B×N×D son vectors.
        k: neighbours per query.
        table: M×W son indices per query in increasing order, or None for a global search.
        chunk_elems: queries are processed in chunks whose B×chunk×W×D difference tensor has about this many
            elements (64 MiB in float32).

    Returns:
        dist: B×M×k ascending. idx: B×M×k son indices (ties: lower index first).
    """
    B, M, D = q.shape
    width = s.shape[1] if table is None else table.shape[1]
    chunk = max(1, chunk_elems // max(1, B * width * D))
    dists, idxs = [], []
    for a in range(0, M, chunk):
        qc = q[:, a: a + chunk]
        if table is None:
            d = exact_sqdist(qc, s.unsqueeze(1))  # B×mc×N
            dd, ii = _stable_topk(d, k)
        else:
            t = table[a: a + chunk]  # mc×W
            d = exact_sqdist(qc, s[:, t])  # B×mc×W
            dd, pos = _stable_topk(d, k)
            ii = t.unsqueeze(0).expand(B, -1, -1).gather(2, pos)
        dists.append(dd)
        idxs.append(ii)
    return torch.cat(dists, 1), torch.cat(idxs, 1)


def resolve_backend(backend: str, *, windowed: bool, device: torch.device, work: int,
                    dim: int | None = None, dtype: torch.dtype | None = None,
                    engine: Engine = "auto") -> tuple[str, str]:
    """The backend that runs for a request, and a note saying why (empty for an explicit choice).

    Args:
        backend: the requested backend.
        windowed: whether the search is windowed.
        device: the tensors' device.
        work: queries × candidates × D per image (M·N·D for a global search).
        dim: D, the patch-vector length (None: not considered).
        dtype: the tensors' dtype (None: float32 assumed).
        engine: the torch backend's engine; ``torch`` rules out the C kernels, so ``auto`` then follows the
            faiss rules for whole-image search.

    Raises:
        ValueError: unknown backend.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if backend != "auto":
        return backend, ""
    if windowed:
        return "torch", "windowed search: tiled torch GEMM is fastest"
    if device.type == "cpu" and dtype in (None, torch.float32) and engine != "torch" and kernels.load() is not None:
        return "torch", "whole-image search on CPU: torch with the C kernels is faster than faiss"
    if not faiss_available():
        return "torch", "faiss not installed (pip install 'ignn-lab[faiss]'), using torch"
    if device.type != "cpu":
        if not faiss_has_gpu(load_faiss()):
            return "torch", f"faiss has no GPU support, tensors are on {device}: using torch"
        return "faiss", "whole-image search on GPU with faiss-gpu"
    if work < AUTO_FAISS_MIN_WORK:
        return "torch", f"whole-image search below the faiss crossover ({work} < {AUTO_FAISS_MIN_WORK} M·N·D)"
    if dim is not None and dim < AUTO_FAISS_MIN_DIM:
        return "torch", f"whole-image search of {dim}-d patches: torch is faster below {AUTO_FAISS_MIN_DIM}-d"
    return "faiss", (f"whole-image search at the faiss crossover or above "
                     f"({work} >= {AUTO_FAISS_MIN_WORK} M·N·D)")


def _check_int(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


def _check_inputs(query: Tensor, son: Tensor) -> None:
    for name, t in (("query", query), ("son", son)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating tensor (float16, bfloat16, float32 or float64), "
                            f"got {t.dtype}")
    if query.ndim != 4 or son.ndim != 4:
        raise ValueError(f"cross_scale_knn expects B×C×H×W tensors, got {tuple(query.shape)} and "
                         f"{tuple(son.shape)}")
    if query.shape[:2] != son.shape[:2]:
        raise ValueError(f"query and son must share batch and channels: {tuple(query.shape)} vs "
                         f"{tuple(son.shape)}")
    if query.dtype != son.dtype or query.device != son.device:
        raise ValueError(f"query and son must share dtype and device: {query.dtype} on {query.device} "
                         f"vs {son.dtype} on {son.device}")


def cross_scale_knn(
    query: Tensor,
    son: Tensor,
    *,
    k: int = 5,
    patch_size: int = 3,
    stride: int = 2,
    window: int | None = 30,
    graph_scale: int = 2,
    backend: Backend = "auto",
    centering: Centering = "corrected",
    tile: int | tuple[int, int] | None = None,
    engine: Engine = "auto",
    selection: Selection = "auto",
    shortlist_extra: int | None = None,
) -> CrossScaleGraph:
    """Exact k nearest son patches for every query patch.

    Args:
        query: B×C×H×W embedding of the LR image (any floating dtype; float16/bfloat16 are searched in
            float32).
        son: B×C×h×w embedding of the LR image downscaled by ``graph_scale`` (same B, C, dtype, device).
        k: neighbours per query, 1 ≤ k ≤ candidates.
        patch_size, stride: patch geometry at LR resolution (3 and 2 in IGNN).
        window: side of the square search window in son-grid units, or None for a global search. A window that
            covers the whole son grid means a global search; otherwise the side is ``min(window, n1, n2)``.
        graph_scale: g, the son's downscale factor (2 for ×2/×4, 3 for ×3; 1 for same-scale search).
        backend: "auto", "torch", "reference" or "faiss".
        centering: "corrected" (``⌊i/g⌋ - ⌊s/2⌋``) or "released" (``⌊i/2⌋ - ⌊s/g⌋``, the released code).
        tile: query-tile side, or (rows, cols), of the torch backend's tiled search (default: chosen by a
            measured cost model, :func:`~ignn_lab.graph.knn_tiles.choose_tile`; for a whole-image search
            through the C kernels, :data:`~ignn_lab.graph.knn_torch.GLOBAL_TILE`).
        engine: the torch backend's engine: "auto" (the fastest that applies), "torch", "c-float32" or
            "c-bf16" (:func:`~ignn_lab.graph.knn_torch.plan_engine`); a named engine that cannot run these
            inputs is an error. Only "auto" with the faiss and reference backends.
        selection: the "torch" engine's shortlist selection: "auto", "topk" or "heap" (faiss's heap).
        shortlist_extra: candidates recomputed exactly beyond k (default 3; 5 with bfloat16 keys). Fewer mean
            more rows rescanned; the result is the same.

    Every combination of backend, engine, selection, shortlist_extra and tile returns the same tensors.

    Returns:
        A :class:`CrossScaleGraph`: ``index`` B×M×k int64 and ``distance`` B×M×k (query dtype), exact,
        ascending, ties to the lower son index; and what ran (backend, engine, selection, shortlist, rescans).

    Raises:
        TypeError: non-tensor or non-floating inputs, non-int sizes.
        ValueError: bad shapes, dtype/device mismatch, k out of range, unknown backend, engine, selection or
            centering, an engine or selection that cannot run these inputs.
        ImportError: ``backend="faiss"`` without faiss installed.
    """
    _check_inputs(query, son)
    for name, value, low in (("k", k, 1), ("patch_size", patch_size, 1), ("stride", stride, 1),
                             ("graph_scale", graph_scale, 1)):
        _check_int(name, value, low)
    if window is not None:
        _check_int("window", window, 1)
    if tile is not None:
        for t in (tile if isinstance(tile, tuple) else (tile,)):
            _check_int("tile", t, 1)
    if shortlist_extra is not None:
        _check_int("shortlist_extra", shortlist_extra, 0)
    if centering not in ("corrected", "released"):
        raise ValueError(f"centering must be 'corrected' or 'released', got {centering!r}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {', '.join(SELECTIONS)}; got {selection!r}")
    for name, t in (("query", query), ("son", son)):
        if min(t.shape[2:]) < patch_size:
            raise ValueError(f"{name} is {t.shape[2]}×{t.shape[3]}, smaller than the patch size {patch_size}")
    qgrid = (grid_size(query.shape[2], patch_size, stride), grid_size(query.shape[3], patch_size, stride))
    sgrid = (grid_size(son.shape[2], patch_size, stride), grid_size(son.shape[3], patch_size, stride))
    qpad = calc_padding(query.shape[2], patch_size, stride) + calc_padding(query.shape[3], patch_size, stride)
    spad = calc_padding(son.shape[2], patch_size, stride) + calc_padding(son.shape[3], patch_size, stride)
    side = effective_window(window, sgrid)
    n_cand = sgrid[0] * sgrid[1] if side is None else side * side
    if k > n_cand:
        raise ValueError(f"k={k} must be between 1 and the number of candidates ({n_cand})")
    work = qgrid[0] * qgrid[1] * n_cand * query.shape[1] * patch_size * patch_size
    compute = torch.float64 if query.dtype == torch.float64 else torch.float32
    name, note = resolve_backend(backend, windowed=side is not None, device=query.device, work=work, dtype=compute,
                                 dim=query.shape[1] * patch_size * patch_size, engine=engine)
    if name != "torch" and (engine != "auto" or selection != "auto"):
        raise ValueError(f"engine and selection choose among the torch backend's engines; the {name} backend "
                         f"runs with engine='auto', selection='auto' (got {engine!r}, {selection!r})")
    q, s = query.to(compute), son.to(compute)
    if name == "reference":
        dist, idx = _run_reference(q, s, k, patch_size, stride, side, graph_scale, centering)
        stats = SearchStats("reference", "none", None, None)
    else:
        sv = im2patch_rows(s, 0, sgrid[0], patch_size, stride)  # B×N×D, contiguous
        if name == "faiss":
            load_faiss()  # a clear ImportError before any work
            if side is None:
                dist, idx, stats = knn_faiss.global_search(q, sv, k, patch_size=patch_size, stride=stride,
                                                           shortlist_extra=shortlist_extra)
            else:
                dist, idx, stats = knn_faiss.windowed_search(q, sv, sgrid, side, graph_scale, k, centering=centering,
                                                             patch_size=patch_size, stride=stride,
                                                             shortlist_extra=shortlist_extra)
        elif side is None:
            dist, idx, stats = knn_torch.global_search(q, sv, sgrid, k, patch_size=patch_size, stride=stride,
                                                       tile=tile, engine=engine, selection=selection,
                                                       shortlist_extra=shortlist_extra)
        else:
            dist, idx, stats = knn_torch.windowed_search(q, sv, sgrid, side, graph_scale, k, centering=centering,
                                                         patch_size=patch_size, stride=stride, tile=tile,
                                                         engine=engine, selection=selection,
                                                         shortlist_extra=shortlist_extra)
    return CrossScaleGraph(idx, dist.to(query.dtype), qgrid, sgrid, qpad, spad, side, graph_scale, patch_size,
                           stride, name, note, stats.engine, stats.selection, stats.shortlist, stats.rescans)


def _run_reference(q: Tensor, s: Tensor, k: int, patch_size: int, stride: int, side: int | None,
                   graph_scale: int, centering: Centering) -> tuple[Tensor, Tensor]:
    qv, qgrid, _ = im2patch(q, patch_size, stride)
    sv, sgrid, _ = im2patch(s, patch_size, stride)
    table = None
    if side is not None:
        table = window_table(qgrid, sgrid, side, graph_scale, centering, order="row", device=q.device)
    return knn_reference(qv, sv, k, table)
