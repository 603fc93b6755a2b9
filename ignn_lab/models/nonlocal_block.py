"""Non-local block (Wang et al., CVPR 2018, embedded Gaussian), the baseline of IGNN's RQ2: dense or region-level.

Every LR pixel attends to every LR pixel of the same image, or of the same ``region`` × ``region`` cell of a grid
anchored at the top-left corner (the region-level non-local of RNAN / SAN; the last row and column of cells are
smaller where the size is not a multiple): ``y = x + W·softmax(θ(x)ᵀφ(x))·g(x)`` with 1×1 convs θ, φ, g (C→C/2)
and W (C/2→C). Dense attention costs HW² — over an hour of one CPU core for the Urban100 ×2 images of the lite
body — while a region as large as the training patch gives the model, at test time, the same extent it was trained
with at HW·region² cost. The attention is ``scaled_dot_product_attention`` (scale 1); on CPU its memory grows with
the square of the cell's pixel count too (a dense 200×200 map took 14 GB here), another reason for cells.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ["NonLocalBlock", "non_local"]


def _bands(n: int, r: int) -> list[tuple[int, int, int]]:
    """Split ``[0, n)`` into at most two bands of equal cells: ``(start, stop, cell)``."""
    full = (n // r) * r
    return [b for b in ((0, full, r), (full, n, n - full)) if b[1] > b[0]]


def _cells(t: Tensor, ry: int, rx: int) -> Tensor:
    """B×C×(ny·ry)×(nx·rx) → (B·ny·nx)×(ry·rx)×C: one sequence per cell."""
    b, c, h, w = t.shape
    t = t.reshape(b, c, h // ry, ry, w // rx, rx).permute(0, 2, 4, 3, 5, 1)
    return t.reshape(-1, ry * rx, c)


def _uncells(t: Tensor, b: int, h: int, w: int, ry: int, rx: int) -> Tensor:
    """The inverse of :func:`_cells`."""
    c = t.shape[-1]
    t = t.reshape(b, h // ry, w // rx, ry, rx, c).permute(0, 5, 1, 3, 2, 4)
    return t.reshape(b, c, h, w)


def non_local(x: Tensor, theta: nn.Module, phi: nn.Module, g: nn.Module, region: int | None = None) -> Tensor:
    """Attention over all positions, or within each ``region`` × ``region`` cell.

    Args:
        x: B×C×H×W.
        theta, phi, g: 1×1 convs C→C'.
        region: cell side in pixels; None (or a cell covering the image): dense.

    Returns:
        B×C'×H×W: for every position, the softmax(θ·φ)-weighted mean of g over its cell (the image when dense).
    """
    b, _, h, w = x.shape
    q, k, v = theta(x), phi(x), g(x)  # 1×1 convs: computing them once and cutting cells equals per-cell convs
    parts = []
    for y0, y1, ry in _bands(h, region or h):
        row = []
        for x0, x1, rx in _bands(w, region or w):
            cut = [_cells(t[:, :, y0:y1, x0:x1], ry, rx) for t in (q, k, v)]
            att = F.scaled_dot_product_attention(*cut, scale=1.0)
            row.append(_uncells(att, b, y1 - y0, x1 - x0, ry, rx))
        parts.append(torch.cat(row, dim=3) if len(row) > 1 else row[0])
    return torch.cat(parts, dim=2) if len(parts) > 1 else parts[0]


class NonLocalBlock(nn.Module):
    """Residual embedded-Gaussian non-local block: B×C×H×W → B×C×H×W.

    Args:
        n_feats: C.
        inter_channels: C' (default C/2).
        region: attend within ``region`` × ``region`` cells (None: dense).
    """

    def __init__(self, n_feats: int, inter_channels: int | None = None, region: int | None = None):
        super().__init__()
        ci = inter_channels or max(1, n_feats // 2)
        self.region = region
        self.theta = nn.Conv2d(n_feats, ci, 1)
        self.phi = nn.Conv2d(n_feats, ci, 1)
        self.g = nn.Conv2d(n_feats, ci, 1)
        self.w = nn.Conv2d(ci, n_feats, 1)

    def forward(self, x: Tensor) -> Tensor:
        """B×C×H×W → B×C×H×W."""
        return x + self.w(non_local(x, self.theta, self.phi, self.g, self.region))
