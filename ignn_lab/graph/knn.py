"""Cross-scale kNN: for every LR (query) patch, its k nearest patches in the son image (spec §4).

This module holds the public entry point and an exact reference backend. Distances are squared L2 between
patch vectors; ties go to the lower son index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ignn_lab.graph.patches import im2patch
from ignn_lab.graph.window import Centering, effective_window, window_table

Backend = Literal["auto", "torch", "reference", "faiss"]

__all__ = ["Backend", "CrossScaleGraph", "cross_scale_knn", "knn_reference"]


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
        backend: the backend that ran.
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


def _stable_topk(dist: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """k smallest along the last dim, ties to the lower position (candidates must be in index order)."""
    d, pos = torch.sort(dist, dim=-1, stable=True)
    return d[..., :k], pos[..., :k]


def knn_reference(q: Tensor, s: Tensor, k: int, table: Tensor | None, chunk: int = 4096) -> tuple[Tensor, Tensor]:
    """Exact kNN by explicit differences (slow, simple).

    Args:
        q: B×M×D query vectors. s: B×N×D son vectors.
        table: M×W son indices per query in increasing order, or None for a global search.

    Returns:
        dist: B×M×k ascending. idx: B×M×k son indices.
    """
    B, M, _ = q.shape
    dists, idxs = [], []
    for a in range(0, M, chunk):
        qc = q[:, a: a + chunk]
        if table is None:
            d = (qc.unsqueeze(2) - s.unsqueeze(1)).pow(2).sum(-1)  # B×mc×N
            dd, ii = _stable_topk(d, k)
        else:
            t = table[a: a + chunk]  # mc×W
            cand = s[:, t]  # B×mc×W×D
            d = (qc.unsqueeze(2) - cand).pow(2).sum(-1)
            dd, pos = _stable_topk(d, k)
            ii = t.unsqueeze(0).expand(B, -1, -1).gather(2, pos)
        dists.append(dd)
        idxs.append(ii)
    return torch.cat(dists, 1), torch.cat(idxs, 1)


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
) -> CrossScaleGraph:
    """Exact k nearest son patches for every query patch.

    Args:
        query: B×C×H×W embedding of the LR image.
        son: B×C×h×w embedding of the LR image downscaled by ``graph_scale`` (same B, C, dtype, device).
        k: neighbours per query, 1 ≤ k ≤ candidates.
        patch_size, stride: patch geometry at LR resolution (3 and 2 in IGNN).
        window: side of the square search window in son-grid units, or None for a global search. A window that
            covers the whole son grid means a global search; otherwise the side is ``min(window, n1, n2)``.
        graph_scale: g, the son's downscale factor (2 for ×2/×4, 3 for ×3).
        backend: "auto", "torch", "reference" or "faiss".
        centering: "corrected" (``⌊i/g⌋ - ⌊s/2⌋``) or "released" (``⌊i/2⌋ - ⌊s/g⌋``, the released code).

    Returns:
        A :class:`CrossScaleGraph`.
    """
    if query.ndim != 4 or son.ndim != 4:
        raise ValueError(f"cross_scale_knn expects B×C×H×W tensors, got {tuple(query.shape)} and {tuple(son.shape)}")
    if query.shape[:2] != son.shape[:2]:
        raise ValueError(f"query and son must share batch and channels: {tuple(query.shape)} vs {tuple(son.shape)}")
    if query.dtype != son.dtype or query.device != son.device:
        raise ValueError("query and son must share dtype and device")
    q, qgrid, qpad = im2patch(query, patch_size, stride)
    s, sgrid, spad = im2patch(son, patch_size, stride)
    side = effective_window(window, sgrid)
    n_cand = sgrid[0] * sgrid[1] if side is None else side * side
    if not 1 <= k <= n_cand:
        raise ValueError(f"k={k} must be between 1 and the number of candidates ({n_cand})")
    table = None
    if side is not None:
        table = window_table(qgrid, sgrid, side, graph_scale, centering, order="row", device=query.device)
    if backend not in ("auto", "torch", "reference", "faiss"):
        raise ValueError(f"backend must be one of auto, torch, reference, faiss; got {backend!r}")
    dist, idx = knn_reference(q, s, k, table)
    return CrossScaleGraph(idx, dist, qgrid, sgrid, qpad, spad, side, graph_scale, patch_size, stride, "reference")
