"""GraphAgg*: IGNN's cross-scale aggregation with nothing learned, in the image domain (spec §2, §4, §5).

For every LR query patch (p×p, stride 2, released padding) the graph holds its k nearest son patches. The son
is the LR downscaled by the graph scale (``ignn_lab.data.degrade.make_son``: the kit's MATLAB-style bicubic
with the released loader's border rule). Each son patch at son-grid (R, C) names the pg×pg block of the LR
image at LR pixel (2gR, 2gC): the block spec §5 step 1 gathers through pixel-shuffle-down, with zeros beyond
``g·⌊H/g⌋``. These HR patches are optionally AdaPN-normalised to the query patch's per-channel statistics
(spec §5 step 2), averaged (uniformly or distance-weighted) and folded with ``patch2im`` (P = pg, S = 2g,
overlaps averaged; spec §5 step 3).

Graph scale: here ``g = scale``. The released network uses g = 2 at ×4 and upsamples the rest with learned
layers; with nothing learned the fold must give the s× image by itself, so the son is LR/s and the HR patches
are s× larger.

Same-scale variant (``cross_scale=False``, RQ2): the neighbours are searched in the LR image itself (window
centred on the query, ``graph_scale = 1``), excluding the trivial self-match. The LR image holds no s×-larger
evidence at its own scale, so the HR patch of a neighbour at LR-grid (R, C) is the ps×ps block at (2sR, 2sC)
of the bicubic (MATLAB ``imresize``) ×s LR: same-scale aggregation is non-local averaging of bicubic detail,
which isolates what the cross-scale search adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ignn_lab.data.degrade import make_son
from ignn_lab.data.imresize import imresize
from ignn_lab.graph.embed import build_embedding, embed
from ignn_lab.graph.knn import Backend, cross_scale_knn
from ignn_lab.graph.patches import im2patch, patch2im
from ignn_lab.graph.window import window_starts

Weighting = Literal["uniform", "distance"]
MATCH_EMBEDDINGS: tuple[str, ...] = ("pixel", "vgg-random", "vgg19")
WEIGHTINGS: tuple[str, ...] = ("uniform", "distance")
ADAPN_EPS = 1e-5  # added to both variances before the square root, as the released AdaIN
STRIDE = 2  # the released stride at LR/son resolution

__all__ = ["MATCH_EMBEDDINGS", "WEIGHTINGS", "MatchGraph", "GraphAggDetails", "search_graph", "aggregate",
           "graphagg_star", "recurrence_map", "recurrence_from_graph", "graphagg_details", "adapn_normalize",
           "crop_box"]


@dataclass
class MatchGraph:
    """The patch graph GraphAgg* aggregates over (from :func:`search_graph`).

    Attributes:
        lr: B×C×H×W float in [0, 1], the query image.
        son: B×C×h×w, the searched image: the son (LR/s) when ``cross_scale``, else ``lr`` itself.
        hr_source: the image the HR patches are cut from: the LR cropped to ``s·⌊H/s⌋ × s·⌊W/s⌋``
            (cross-scale) or the bicubic ×s LR (same-scale).
        scale: s (= the graph scale). cross_scale: see the module docstring. patch_size: p.
        index: B×M×k int64, flat row-major indices into the son patch grid, nearest first (no self-matches).
        distance: B×M×k squared L2 in the embedding, ascending.
        query_grid, query_padding, son_grid, son_padding: as :class:`~ignn_lab.graph.knn.CrossScaleGraph`.
        window: the effective square window side in son-grid units, or None (global).
        backend: the kNN backend that ran.
    """

    lr: Tensor
    son: Tensor
    hr_source: Tensor
    scale: int
    cross_scale: bool
    patch_size: int
    index: Tensor
    distance: Tensor
    query_grid: tuple[int, int]
    query_padding: tuple[int, int, int, int]
    son_grid: tuple[int, int]
    son_padding: tuple[int, int, int, int]
    window: int | None
    backend: str

    @property
    def k(self) -> int:
        """Neighbours per query."""
        return self.index.shape[-1]

    @property
    def hr_patch_size(self) -> int:
        """Side of an HR patch: p·s."""
        return self.patch_size * self.scale

    @property
    def search_scale(self) -> int:
        """Graph scale of the search: s (cross-scale) or 1 (same-scale)."""
        return self.scale if self.cross_scale else 1


@dataclass
class GraphAggDetails:
    """The intermediate pieces of GraphAgg* for a few queries of one image (from :func:`graphagg_details`).

    Boxes are int64 (top, left, height, width) in pixels of the image named; they may reach one padded stride
    beyond the bottom/right edge (those pixels are the zeros of the released padding).

    Attributes:
        query_index: Q int64 flat query-grid indices.  query_boxes: Q×4 in LR pixels.
        query_patches: Q×C×p×p LR patches (zero padded).
        neighbour_index: Q×k son-grid indices.  distance: Q×k squared L2, ascending.
        son_boxes: Q×k×4 in son pixels (same-scale: LR pixels).  son_patches: Q×k×C×p×p.
        window_boxes: Q×4 in son pixels, the search window; None for a global search.
        hr_boxes: Q×k×4 in ``hr_source`` pixels (cross-scale: LR pixels, = g × the son box).
        hr_patches: Q×k×C×P×P raw HR patches (P = p·s).  hr_patches_adapn: the same after AdaPN.
        weights: Q×k aggregation weights (sum to 1).
        aggregate: Q×C×P×P, the weighted sum (of AdaPN patches when ``adapn``), before the overlap fold.
        output_boxes: Q×4 in SR pixels, where each aggregate lands (s × the query box).
        scale: s.  cross_scale: whether the neighbours are son patches (else same-scale LR patches).
    """

    query_index: Tensor
    query_boxes: Tensor
    query_patches: Tensor
    neighbour_index: Tensor
    distance: Tensor
    son_boxes: Tensor
    son_patches: Tensor
    window_boxes: Tensor | None
    hr_boxes: Tensor
    hr_patches: Tensor
    hr_patches_adapn: Tensor
    weights: Tensor
    aggregate: Tensor
    output_boxes: Tensor
    scale: int
    cross_scale: bool


def _check_lr(lr: Tensor, scale: int, patch_size: int) -> None:
    if not isinstance(lr, Tensor):
        raise TypeError(f"lr must be a torch.Tensor (B×C×H×W float in [0, 1]), got {type(lr).__name__}")
    if lr.ndim != 4 or lr.shape[1] not in (1, 3):
        raise ValueError(f"lr must be B×C×H×W with C = 1 or 3, got shape {tuple(lr.shape)}")
    if not lr.is_floating_point():
        raise TypeError(f"lr must be a float tensor in [0, 1], got dtype {lr.dtype}; divide uint8 by 255")
    lo, hi = float(lr.min()), float(lr.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ValueError(f"lr must hold values in [0, 1], found [{lo:.4g}, {hi:.4g}]"
                         + ("; divide 0-255 images by 255" if hi > 1.5 else ""))
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 2:
        raise ValueError(f"scale must be an int >= 2, got {scale!r}")
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 2:
        raise ValueError(f"patch_size must be an int >= 2, got {patch_size!r}")
    h, w = lr.shape[-2] // scale, lr.shape[-1] // scale
    if min(h, w) < patch_size:
        raise ValueError(f"lr of {lr.shape[-2]}×{lr.shape[-1]} is too small for ×{scale}: its son "
                         f"({h}×{w}) must be at least {patch_size}×{patch_size}")


def _embed3(x: Tensor, kind: str, net: torch.nn.Module | None) -> Tensor:
    return embed(x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x, kind, net=net)  # type: ignore[arg-type]


def _drop_self(index: Tensor, distance: Tensor) -> tuple[Tensor, Tensor]:
    """Remove each query's own patch from k+1 same-scale neighbours (the last one where it is absent)."""
    B, M, k1 = index.shape
    drop = index == torch.arange(M, device=index.device).view(1, M, 1)
    drop[..., -1] |= ~drop.any(-1)
    keep = ~drop
    return index[keep].view(B, M, k1 - 1), distance[keep].view(B, M, k1 - 1)


def search_graph(lr: Tensor, scale: int, *, k: int = 5, window: int | None = 30, embedding: str = "pixel",
                 cross_scale: bool = True, patch_size: int = 3, backend: Backend = "auto") -> MatchGraph:
    """Build the GraphAgg* graph: son, embedding, kNN (through :func:`cross_scale_knn`).

    Args:
        lr: B×C×H×W float in [0, 1], C = 1 (replicated to RGB for the embedding) or 3; CPU or CUDA.
        scale: s >= 2, the SR scale and the graph scale.
        k: neighbours per query.
        window: square search window in son-grid units (None = global), as :func:`cross_scale_knn`.
        embedding: ``pixel``, ``vgg-random`` or ``vgg19`` (see :mod:`ignn_lab.graph.embed`).
        cross_scale: search the son (True) or the LR image itself, without the self-match (False).
        patch_size: p, the query/son patch side (3 in IGNN); the stride is always 2.
        backend: kNN backend (``auto``, ``torch``, ``reference``, ``faiss``).

    Returns:
        A :class:`MatchGraph`.
    """
    _check_lr(lr, scale, patch_size)
    if embedding not in MATCH_EMBEDDINGS:
        raise ValueError(f"embedding must be one of {', '.join(MATCH_EMBEDDINGS)}, got {embedding!r} "
                         "(for your own features call cross_scale_knn directly)")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    net = build_embedding(embedding)  # type: ignore[arg-type]
    H, W = lr.shape[-2:]
    if cross_scale:
        hr_source = lr[..., : H - H % scale, : W - W % scale]
        son = make_son(lr, scale)
        g = cross_scale_knn(_embed3(lr, embedding, net), _embed3(son, embedding, net), k=k,
                            patch_size=patch_size, stride=STRIDE, window=window, graph_scale=scale,
                            backend=backend)
        index, distance = g.index, g.distance
    else:
        son = lr
        hr_source = imresize(lr, scale).clamp(0, 1)
        e = _embed3(lr, embedding, net)
        try:  # k + 1: the query's own patch is among the candidates
            g = cross_scale_knn(e, e, k=k + 1, patch_size=patch_size, stride=STRIDE, window=window,
                                graph_scale=1, backend=backend)
        except ValueError as exc:
            raise ValueError(f"same-scale search for k={k} (k+1 with the self-match): {exc}") from exc
        index, distance = _drop_self(g.index, g.distance)
    return MatchGraph(lr, son, hr_source, scale, cross_scale, patch_size, index, distance, g.query_grid,
                      g.padding, g.son_grid, g.son_padding, g.window, g.backend)


def _hr_candidates(mg: MatchGraph) -> Tensor:
    """Every son patch's HR patch: B×N×(C·P·P), ordered (c, y, x) within the P×P block."""
    s, P = mg.scale, mg.hr_patch_size
    top, bottom, left, right = (s * v for v in mg.son_padding)
    cols = F.unfold(F.pad(mg.hr_source, (left, right, top, bottom)), P, stride=STRIDE * s)
    if cols.shape[-1] != mg.son_grid[0] * mg.son_grid[1]:
        raise RuntimeError(f"HR patch grid of {cols.shape[-1]} does not match the son grid {mg.son_grid}")
    return cols.transpose(1, 2)


def _gather(cand: Tensor, idx: Tensor) -> Tensor:
    """cand B×N×D, idx B×M → B×M×D."""
    return cand.gather(1, idx.unsqueeze(-1).expand(-1, -1, cand.shape[-1]))


def _query_stats(mg: MatchGraph) -> tuple[Tensor, Tensor]:
    """Per query and channel: mean and unbiased variance of the (zero-padded) LR patch, B×M×C×1 each."""
    q, _, _ = im2patch(mg.lr, mg.patch_size, STRIDE)
    q = q.view(q.shape[0], q.shape[1], mg.lr.shape[1], -1)
    return q.mean(-1, keepdim=True), q.var(-1, keepdim=True)


def adapn_normalize(z: Tensor, mean: Tensor, var: Tensor) -> Tensor:
    """AdaPN (the released AdaIN, spec §5 step 2): give each HR patch the query patch's channel statistics.

    Args:
        z: ...×C×L HR patch values (L = P·P per channel), float.
        mean: ...×C×1 query patch means.  var: ...×C×1 unbiased query patch variances.

    Returns:
        ``(z - μ_z)/sqrt(σ²_z + 1e-5)·sqrt(σ² + 1e-5) + μ``, σ²_z unbiased over L; same shape as ``z``.
    """
    mz, vz = z.mean(-1, keepdim=True), z.var(-1, keepdim=True)
    return (z - mz) / torch.sqrt(vz + ADAPN_EPS) * torch.sqrt(var + ADAPN_EPS) + mean


def _weights(distance: Tensor, weighting: str) -> Tensor:
    """B×M×k aggregation weights: uniform 1/k, or softmax(-d / mean(d)) per query (scale-free)."""
    if weighting == "uniform":
        return torch.full_like(distance, 1.0 / distance.shape[-1])
    if weighting == "distance":
        d = distance.clamp_min(0)
        h = d.mean(-1, keepdim=True).clamp_min(torch.finfo(d.dtype).tiny)
        return torch.softmax(-d / h, dim=-1)
    raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")


def _channels(mg: MatchGraph, z: Tensor) -> Tensor:
    """...×(C·L) → ...×C×L."""
    return z.view(*z.shape[:-1], mg.lr.shape[1], -1)


def aggregate(mg: MatchGraph, *, adapn: bool = True, weighting: Weighting = "uniform") -> Tensor:
    """Fold the (AdaPN-normalised) weighted mean of each query's k HR patches into the SR image.

    AdaPN is affine per (query, channel) once a candidate is standardised, and the weights sum to 1: so the
    candidates are standardised once (N of them, not M·k) and the query statistics are applied once to the
    weighted sum. The same arithmetic as normalising every (query, rank) patch, reordered.

    Args:
        mg: from :func:`search_graph`.
        adapn: normalise each HR patch to the query patch's channel statistics first.
        weighting: ``uniform`` (1/k) or ``distance`` (softmax of ``-d/mean_k(d)`` per query).

    Returns:
        B×C×sH×sW in [0, 1] (clamped), the lr's dtype and device.
    """
    w = _weights(mg.distance, weighting)
    cand = _hr_candidates(mg)
    if adapn:
        z = _channels(mg, cand)
        cand = ((z - z.mean(-1, keepdim=True)) / torch.sqrt(z.var(-1, keepdim=True) + ADAPN_EPS)).flatten(-2)
    acc = w[..., 0:1] * _gather(cand, mg.index[..., 0])
    for r in range(1, mg.k):  # a loop over ranks only; each step is one batched gather
        acc.add_(w[..., r: r + 1] * _gather(cand, mg.index[..., r]))
    if adapn:
        mean, var = _query_stats(mg)
        acc = (_channels(mg, acc) * torch.sqrt(var + ADAPN_EPS) + mean).flatten(-2)
    s, P = mg.scale, mg.hr_patch_size
    pads = tuple(s * v for v in mg.query_padding)
    out = patch2im(acc.transpose(1, 2), mg.query_grid, P, STRIDE * s, pads)  # type: ignore[arg-type]
    return out.clamp_(0, 1)


def graphagg_star(lr: Tensor, scale: int, *, k: int = 5, window: int | None = 30, embedding: str = "pixel",
                  adapn: bool = True, weighting: Weighting = "uniform", cross_scale: bool = True,
                  patch_size: int = 3, backend: Backend = "auto") -> Tensor:
    """GraphAgg*: super-resolve by non-learned cross-scale graph aggregation (module docstring).

    Args:
        lr: B×C×H×W float in [0, 1], C = 1 or 3, H and W >= p·scale; CPU or CUDA.
        scale: s >= 2 (the graph scale too).
        k, window, embedding, cross_scale, patch_size, backend: as :func:`search_graph`.
        adapn, weighting: as :func:`aggregate`.

    Returns:
        B×C×sH×sW float in [0, 1], same dtype and device as ``lr``.
    """
    if weighting not in WEIGHTINGS:  # before the search, which is the expensive part
        raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")
    mg = search_graph(lr, scale, k=k, window=window, embedding=embedding, cross_scale=cross_scale,
                      patch_size=patch_size, backend=backend)
    return aggregate(mg, adapn=adapn, weighting=weighting)


def recurrence_from_graph(mg: MatchGraph) -> Tensor:
    """Per-pixel best-match distance: each query's nearest distance spread over its p×p footprint, overlaps
    averaged with ``patch2im``. Returns B×1×H×W (squared L2 in the embedding; low = the patch recurs)."""
    p = mg.patch_size
    d = mg.distance[..., :1].transpose(1, 2)  # B×1×M
    return patch2im(d.expand(-1, p * p, -1), mg.query_grid, p, STRIDE, mg.query_padding)


def recurrence_map(lr: Tensor, scale: int, *, window: int | None = 30, embedding: str = "pixel",
                   cross_scale: bool = True, patch_size: int = 3, backend: Backend = "auto") -> Tensor:
    """Recurrence map at LR resolution: distance to the best cross-scale (or same-scale) match.

    Args:
        lr: B×C×H×W float in [0, 1]. Other arguments as :func:`search_graph`.

    Returns:
        B×1×H×W, >= 0, the lr's dtype: squared L2 between patch embeddings (27-d for ``pixel``), averaged over
        the patches that cover each pixel.
    """
    mg = search_graph(lr, scale, k=1, window=window, embedding=embedding, cross_scale=cross_scale,
                      patch_size=patch_size, backend=backend)
    return recurrence_from_graph(mg)


def _boxes(index: Tensor, grid_w: int, step: int, size: int) -> Tensor:
    """Flat grid indices → (top, left, size, size) boxes, step pixels per grid unit."""
    row, col = torch.div(index, grid_w, rounding_mode="floor"), index % grid_w
    return torch.stack([row * step, col * step, torch.full_like(row, size), torch.full_like(col, size)], -1)


def crop_box(img: Tensor, box: Tensor | tuple[int, int, int, int]) -> Tensor:
    """The pixels of ``img`` (C×H×W) under ``box`` (top, left, height, width), zeros outside the image."""
    top, left, h, w = (int(v) for v in box)
    if h < 1 or w < 1 or top < 0 or left < 0:
        raise ValueError(f"crop_box: box {top, left, h, w} must have top, left >= 0 and a positive size")
    out = img.new_zeros(img.shape[:-2] + (h, w))
    part = img[..., top: top + h, left: left + w]
    out[..., : part.shape[-2], : part.shape[-1]] = part
    return out


def _window_boxes(mg: MatchGraph, qi: Tensor) -> Tensor | None:
    if mg.window is None:
        return None
    side, g = mg.window, mg.search_scale
    (m1, m2), (n1, n2) = mg.query_grid, mg.son_grid
    r0 = window_starts(m1, n1, side, g, device=qi.device)[torch.div(qi, m2, rounding_mode="floor")]
    c0 = window_starts(m2, n2, side, g, device=qi.device)[qi % m2]
    size = STRIDE * (side - 1) + mg.patch_size
    return torch.stack([STRIDE * r0, STRIDE * c0, torch.full_like(r0, size), torch.full_like(c0, size)], -1)


def graphagg_details(mg: MatchGraph, queries: Tensor | list[int] | None = None, *, adapn: bool = True,
                     weighting: Weighting = "uniform", batch_index: int = 0) -> GraphAggDetails:
    """The pieces of GraphAgg* for some queries of one image, for figures and inspection.

    Args:
        mg: from :func:`search_graph`.
        queries: flat query-grid indices (row-major over ``mg.query_grid``); None = all (memory ∝ M·k·P²).
        adapn, weighting: as :func:`aggregate` (``aggregate`` in the result follows them).
        batch_index: which image of the batch.

    Returns:
        A :class:`GraphAggDetails`; its ``aggregate`` rows are the vectors :func:`aggregate` folds (equal up
        to float rounding: :func:`aggregate` applies AdaPN in a reordered but identical arithmetic).
    """
    b, dev = batch_index, mg.index.device
    M = mg.query_grid[0] * mg.query_grid[1]
    if queries is None:
        qi = torch.arange(M, device=dev)
    else:
        qi = torch.as_tensor(queries, device=dev).long().view(-1)
    if qi.numel() == 0 or int(qi.min()) < 0 or int(qi.max()) >= M:
        raise ValueError(f"queries must be flat indices in [0, {M}) of the {mg.query_grid} query grid")
    C, p, s, P = mg.lr.shape[1], mg.patch_size, mg.scale, mg.hr_patch_size
    Q, k = qi.numel(), mg.k
    nb, dist = mg.index[b, qi], mg.distance[b, qi]
    q, _, _ = im2patch(mg.lr[b: b + 1], p, STRIDE)
    qp = q[0, qi].view(Q, C, p * p)
    sp, _, _ = im2patch(mg.son[b: b + 1], p, STRIDE)
    son_patches = sp[0, nb.reshape(-1)].view(Q, k, C, p, p)
    raw = _hr_candidates(mg)[b, nb.reshape(-1)].view(Q, k, C, P * P)
    normed = adapn_normalize(raw, qp.mean(-1, keepdim=True)[:, None], qp.var(-1, keepdim=True)[:, None])
    w = _weights(dist, weighting)
    agg = (w[..., None, None] * (normed if adapn else raw)).sum(1)
    hr_step = STRIDE * s
    return GraphAggDetails(
        query_index=qi, query_boxes=_boxes(qi, mg.query_grid[1], STRIDE, p),
        query_patches=qp.view(Q, C, p, p),
        neighbour_index=nb, distance=dist, son_boxes=_boxes(nb, mg.son_grid[1], STRIDE, p),
        son_patches=son_patches, window_boxes=_window_boxes(mg, qi),
        hr_boxes=_boxes(nb, mg.son_grid[1], hr_step, P), hr_patches=raw.view(Q, k, C, P, P),
        hr_patches_adapn=normed.view(Q, k, C, P, P), weights=w, aggregate=agg.view(Q, C, P, P),
        output_boxes=_boxes(qi, mg.query_grid[1], hr_step, P), scale=s, cross_scale=mg.cross_scale)
