"""Exact re-ranking shared by the fast kNN backends: shortlist on a GEMM, recompute, certify, fall back.

A GEMM gives squared distances as ``‖q‖² + ‖s‖² − 2q·s``; in floating point this cancels badly for near
neighbours. The fast backends therefore only use it to *shortlist*:

1. Work on centred vectors ``q' = q − c``, ``s' = s − c`` (``c`` = mean of a tile of queries), which leaves
   distances unchanged but shrinks the norms that the rounding error scales with.
2. For every candidate, a *lower bound* ``E = d̃ − γ·(‖q'‖² + ‖s'‖²)`` of the true distance, with the
   worst-case floating-point bound ``γ = (3D + 32)·u`` (``u`` the unit round-off of the GEMM's dtype;
   :func:`gemm_gamma`).
3. Shortlist the ``kp > k`` candidates with the smallest bounds and recompute their distances exactly, as
   ``Σ (q − s)²`` over the *original* vectors (:func:`exact_sqdist`, the one formula every backend uses).
4. Sort the shortlist by (distance, son index) and take ``k``. The result is *certified* when the smallest
   bound among the excluded candidates, shrunk by the recompute's own relative error ``δ = (D + 4)·u``, is
   still larger than the k-th distance: then no excluded candidate can be nearer or tied.
5. Rows that are not certified (exact ties at the k-th place, flat regions) are redone: exact distances for
   every candidate whose bound does not exclude it, then a stable sort (lowest son index first).

Ties therefore go to the lower son index in every backend, and distances are bit-identical between backends.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ignn_lab.graph import kernels
from ignn_lab.graph.faiss_ops import faiss_available, heap_smallest

__all__ = ["LANES", "PAIR_CHUNK", "SHORTLIST_EXTRA", "HEAP_MAX_ABS", "HEAP_MAX_CANDIDATES", "SearchStats",
           "exact_sqdist", "gemm_gamma", "heap_select_ok", "max_abs_within", "recompute_delta", "refine_shortlist",
           "refine_topk", "shortlist_size", "smallest_entries", "workspace"]

#: Extra shortlisted candidates beyond k, by default (measured: with tile centring, <2 % of rows need the
#: fallback).
SHORTLIST_EXTRA = 3
#: Elements (pairs × D) recomputed per fallback chunk; bounds the fallback's memory.
PAIR_CHUNK = 1 << 22
#: float32 distances are summed in this many lanes (see :func:`exact_sqdist`; defined in ``_kernels.h``).
LANES = kernels.LANES


@dataclass(frozen=True)
class SearchStats:
    """What a fast search ran, for :class:`~ignn_lab.graph.knn.CrossScaleGraph`.

    Attributes:
        engine: ``c-bf16``, ``c-float32`` or ``torch`` (torch backend), ``faiss`` (faiss backend),
            ``reference``.
        selection: how shortlists were selected: ``kernel`` (inside the C kernel), ``heap`` (faiss's heap),
            ``topk`` (torch), ``faiss`` (faiss's search).
        shortlist: candidates recomputed exactly per row (at most the candidates a row has); None where every
            distance is computed.
        rescans: rows whose shortlist was not certified and that were searched again exactly (None: no
            shortlist).
    """

    engine: str
    selection: str
    shortlist: int | None
    rescans: int | None


def _lane_sum(sq: Tensor) -> Tensor:
    """Sum float32 squares over the last dim as the C kernel does: lane ``j`` takes ``i ≡ j (mod LANES)`` in a
    sequential float64 sum (``cumsum`` is sequential), lanes combine pairwise (j + LANES/2, …, + 1), float32."""
    pad = -sq.shape[-1] % LANES
    if pad:
        sq = torch.nn.functional.pad(sq, (0, pad))  # + 0.0 leaves a sum of squares unchanged
    lanes = sq.view(*sq.shape[:-1], -1, LANES).to(torch.float64).cumsum(-2)[..., -1, :]
    w = LANES // 2
    while w:
        lanes = lanes[..., :w] + lanes[..., w: 2 * w]
        w //= 2
    return lanes[..., 0].to(torch.float32)


def exact_sqdist(q: Tensor, cand: Tensor) -> Tensor:
    """Squared L2 by explicit differences, the formula every backend reports.

    float32: float32 differences and squares, summed in float64 in a fixed order (LANES lanes of sequential sums,
    combined pairwise), rounded once to float32: order-independent of the tensor layout and the same bits as
    the C kernels (:mod:`~ignn_lab.graph.kernels`). Other dtypes: in their own precision, one fixed layout.

    Args:
        q: ...×D query vectors.
        cand: ...×K×D candidate vectors (broadcast against ``q``), same dtype.

    Returns:
        ...×K squared distances, dtype of the inputs.
    """
    if _use_kernel(q, cand):
        return kernels.sqdist_batch(q, cand)
    diff = (q.unsqueeze(-2) - cand).contiguous()  # one memory layout, so one summation order everywhere
    diff.mul_(diff)
    return _lane_sum(diff) if diff.dtype == torch.float32 else diff.sum(-1)


def _use_kernel(q: Tensor, cand: Tensor) -> bool:
    return (q.dtype == torch.float32 and cand.dtype == torch.float32 and q.device.type == "cpu"
            and cand.device.type == "cpu" and kernels.load() is not None)


def _exact_sqdist_into(q: Tensor, cand: Tensor) -> Tensor:
    """:func:`exact_sqdist`, free to overwrite ``cand`` (contiguous ...×K×D); ``(s − q)²`` equals ``(q − s)²``."""
    if _use_kernel(q, cand):
        return kernels.sqdist_batch(q, cand)
    cand.sub_(q.unsqueeze(-2))
    cand.mul_(cand)
    return _lane_sum(cand) if cand.dtype == torch.float32 else cand.sum(-1)


def _unit_roundoff(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).eps / 2


def gemm_gamma(dim: int, dtype: torch.dtype) -> float:
    """Relative error factor γ of a GEMM distance: ``|d̃ − d| ≤ γ·(‖q'‖² + ‖s'‖²)``.

    Worst case for ``d̃ = (q', 1, ‖q'‖²)·(−2s', ‖s'‖², 1)`` (norms carried inside the GEMM): the norms cost
    ``γ_D`` each, the length-(D+2) dot product ``2γ_{D+2}``; +32 unit round-offs cover centring and rounding
    of the stored coordinates.
    """
    return (3 * dim + 32) * _unit_roundoff(dtype)


def recompute_delta(dim: int, dtype: torch.dtype) -> float:
    """Relative error bound δ of :func:`exact_sqdist` (a sum of ``dim`` non-negative rounded squares)."""
    return (dim + 4) * _unit_roundoff(dtype)


def shortlist_size(k: int, n_cand: int, extra: int | None = None) -> int:
    """Number of candidates recomputed exactly per row: ``k + extra`` (default :data:`SHORTLIST_EXTRA`), at
    most ``n_cand``."""
    return min(k + (SHORTLIST_EXTRA if extra is None else extra), n_cand)


def _sort_by_distance_then_index(dist: Tensor, idx: Tensor, k: int) -> tuple[Tensor, Tensor]:
    order = torch.argsort(idx, dim=-1)
    dist, idx = dist.gather(-1, order), idx.gather(-1, order)
    order = torch.sort(dist, dim=-1, stable=True).indices[..., :k]
    return dist.gather(-1, order), idx.gather(-1, order)


def refine_shortlist(q: Tensor, son: Tensor, short_idx: Tensor, excluded: Tensor, k: int, *,
                     delta: float) -> tuple[Tensor, Tensor, Tensor]:
    """Exact distances of a shortlist, sorted by (distance, son index), and which rows it does not certify.

    Args:
        q: R×D query vectors (original). son: S×D son vectors (original), same dtype.
        short_idx: R×kp rows of ``son`` shortlisted per row (k ≤ kp), all valid candidates of their row.
        excluded: R lower bounds on the true distance of every candidate left out of the shortlist
            (inf: none left out).
        k: neighbours per row.
        delta: relative error of :func:`exact_sqdist`.

    Returns:
        dist: R×k ascending. idx: R×k rows of ``son``. doubtful: R bool, rows whose result is not certified.
    """
    cand = son.index_select(0, short_idx.reshape(-1)).view(*short_idx.shape, -1)
    dist, idx = _sort_by_distance_then_index(_exact_sqdist_into(q, cand), short_idx, k)
    return dist, idx, ~(excluded * (1 - delta) > dist[..., k - 1])


def workspace(work: dict | None, name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
    """A reusable buffer of ``shape`` (dtype/device of ``like``) from the dict ``work``, or a new tensor.

    Reusing large temporaries avoids fresh page-faulted allocations on every chunk (a measurable cost on CPU).
    """
    numel = 1
    for n in shape:
        numel *= n
    if work is None:
        return torch.empty(shape, dtype=like.dtype, device=like.device)
    buf = work.get(name)
    if buf is None or buf.numel() < numel or buf.dtype != like.dtype or buf.device != like.device:
        buf = work[name] = torch.empty(numel, dtype=like.dtype, device=like.device)
    return buf[:numel].view(shape)


def refine_topk(q: Tensor, son: Tensor, bound: Tensor, cand_index: Tensor, k: int, *, shortlist: int,
                delta: float, work: dict | None = None, heap: bool = False) -> tuple[Tensor, Tensor, int]:
    """Exact k nearest candidates from per-candidate lower bounds (steps 3-5 of the module docstring).

    Work comes in G groups of R queries that share a candidate list (a tile and the union of its windows).

    Args:
        q: G×R×D query vectors (original, not centred).
        son: S×D son vectors (original), same dtype as ``q``.
        bound: G×R×Nc lower bounds of the true squared distances; ``inf`` marks candidates outside a query's
            window. Every query must have at least ``k`` finite entries.
        cand_index: G×Nc int64, the row of ``son`` of each candidate, increasing along Nc.
        k: neighbours per query.
        shortlist: candidates recomputed exactly per query, ``k`` or more (:func:`shortlist_size`).
        delta: relative error of :func:`exact_sqdist` (:func:`recompute_delta`).
        work: a dict of reusable buffers (see :func:`workspace`), kept by the caller across calls.
        heap: shortlist with faiss's heap selection (:func:`heap_select_ok` must hold for the inputs).

    Returns:
        dist: G×R×k exact squared distances, ascending. idx: G×R×k rows of ``son`` (ties: lower row first).
        rescans: queries whose shortlist was not certified and that were redone exactly.
    """
    G, R, n_cand = bound.shape
    kp = min(shortlist, n_cand)
    if kp < n_cand:
        use_heap = heap and n_cand <= HEAP_MAX_CANDIDATES
        short_bound, pos, excluded = heap_smallest(bound, kp) if use_heap else smallest_entries(bound, kp)
    else:
        pos = torch.arange(n_cand, device=q.device).expand(G, R, n_cand)
        excluded = torch.full((G, R), float("inf"), dtype=bound.dtype, device=q.device)
        short_bound = bound
    idx = cand_index.unsqueeze(1).expand(G, R, n_cand).gather(2, pos)
    cand = workspace(work, "shortlist", (G * R * pos.shape[2], son.shape[1]), son)
    torch.index_select(son, 0, idx.reshape(-1), out=cand)
    dist = _exact_sqdist_into(q, cand.view(G, R, pos.shape[2], -1))
    dist.masked_fill_(torch.isinf(short_bound), float("inf"))
    dist, idx = _sort_by_distance_then_index(dist, idx, k)
    doubtful = ~(excluded * (1 - delta) > dist[..., k - 1])
    rescans = int(doubtful.sum())
    if rescans:
        g, r = doubtful.nonzero(as_tuple=True)
        d_f, i_f = _fallback(q[g, r], son, bound[g, r], cand_index[g], dist[g, r, k - 1], k, delta)
        dist[g, r], idx[g, r] = d_f, i_f
    return dist, idx, rescans


#: Candidate lists at least this long are shortlisted through group minima (two short topk, not one long).
GROUPED_MIN_CANDIDATES = 2048
_GROUP = 16


def smallest_entries(bound: Tensor, kp: int) -> tuple[Tensor, Tensor, Tensor]:
    """The ``kp`` smallest entries of each row of ...×Nc ``bound``: (values, positions, min of the rest).

    Long rows first take the minimum of 16 interleaved groups (a vectorised pass), keep the ``kp + 1`` groups
    with the smallest minima, and select among their members only; every entry left out is at least the
    ``(kp+2)``-th group minimum or the ``(kp+1)``-th selected value, whichever is smaller.
    """
    n = bound.shape[-1]
    if n < GROUPED_MIN_CANDIDATES:
        vals, pos = torch.topk(bound, kp + 1, dim=-1, largest=False, sorted=True)
        return vals[..., :kp], pos[..., :kp], vals[..., kp]
    ng = -(-n // _GROUP)
    if ng * _GROUP != n:
        bound = torch.nn.functional.pad(bound, (0, ng * _GROUP - n), value=float("inf"))
    mins = bound.view(*bound.shape[:-1], _GROUP, ng).amin(-2)  # group j = {j, j + ng, j + 2ng, ...}
    gvals, groups = torch.topk(mins, kp + 2, dim=-1, largest=False, sorted=True)
    members = torch.arange(_GROUP, device=bound.device) * ng
    cand = (groups[..., : kp + 1, None] + members).flatten(-2)
    vals, sel = torch.topk(bound.gather(-1, cand), kp + 1, dim=-1, largest=False, sorted=True)
    pos = cand.gather(-1, sel[..., :kp]).clamp_(max=n - 1)  # a padding slot only when its value is inf anyway
    return vals[..., :kp], pos, torch.minimum(vals[..., kp], gvals[..., kp + 1])


#: Rows up to this long are shortlisted by faiss's heap when allowed: 1.2× faster than ``torch.topk`` on the
#: ignn-lite graph (64-candidate windows); on the 1,155-candidate rows of a window-30 search it was 5 % slower.
HEAP_MAX_CANDIDATES = 512
#: Inputs whose entries all lie within ±HEAP_MAX_ABS cannot overflow a bound (576-d: norms < 3·10³³), so
#: no bound is NaN, which faiss's heap would silently pass over.
HEAP_MAX_ABS = 1e15


def max_abs_within(tensors: tuple[Tensor, ...], limit: float) -> float | None:
    """max |x| over float32 CPU ``tensors`` when every entry lies within ±``limit``, else None (also for NaN,
    other dtypes or devices)."""
    if any(t.dtype != torch.float32 or t.device.type != "cpu" for t in tensors):
        return None
    amax = 0.0
    for t in tensors:
        if t.numel():
            low, high = (float(v) for v in torch.aminmax(t))
            if not (-limit <= low and high <= limit):  # NaN fails too
                return None
            amax = max(amax, -low, high)
    return amax


def heap_select_ok(*tensors: Tensor) -> bool:
    """True when shortlists of these inputs may use faiss's heap selection
    (:func:`~ignn_lab.graph.faiss_ops.heap_smallest`): float32 CPU tensors with entries in ±:data:`HEAP_MAX_ABS`
    (NaN fails the test), and faiss installed."""
    return max_abs_within(tensors, HEAP_MAX_ABS) is not None and faiss_available()


def _fallback(q: Tensor, son: Tensor, bound: Tensor, cand_index: Tensor, dk: Tensor, k: int,
              delta: float) -> tuple[Tensor, Tensor]:
    """F rows: exact distances for every candidate that its bound does not exclude, then a stable sort."""
    keep = (bound * (1 - delta) <= dk.unsqueeze(1)) & torch.isfinite(bound)
    rows, cols = keep.nonzero(as_tuple=True)
    dense = torch.full(bound.shape, float("inf"), dtype=q.dtype, device=q.device)
    step = max(1, PAIR_CHUNK // max(1, q.shape[1]))
    for a in range(0, rows.numel(), step):
        r, c = rows[a: a + step], cols[a: a + step]
        d = exact_sqdist(q.index_select(0, r), son.index_select(0, cand_index[r, c]).unsqueeze(1))
        dense[r, c] = d.squeeze(1)
    d, pos = torch.sort(dense, dim=1, stable=True)
    return d[:, :k], cand_index.gather(1, pos[:, :k])
