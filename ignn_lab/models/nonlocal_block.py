"""Dense same-scale non-local block (Wang et al., CVPR 2018, embedded Gaussian), the baseline of IGNN's RQ2.

Every LR pixel attends to every LR pixel of the same image: ``y = x + W·softmax(θ(x)ᵀφ(x))·g(x)`` with 1×1
convs θ, φ, g (C→C/2) and W (C/2→C), as in the non-local blocks of RNAN / SAN. The attention is computed with
``scaled_dot_product_attention`` (scale 1, memory-efficient), so large images never materialise an HW×HW
matrix.
"""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ["NonLocalBlock", "non_local"]


def non_local(x: Tensor, theta: nn.Module, phi: nn.Module, g: nn.Module) -> Tensor:
    """Dense attention over all positions.

    Args:
        x: B×C×H×W.
        theta, phi, g: 1×1 convs C→C'.

    Returns:
        B×C'×H×W: for every position, the softmax(θ·φ)-weighted mean of g over all positions.
    """
    b, _, h, w = x.shape
    q = theta(x).flatten(2).transpose(1, 2).unsqueeze(1)  # B×1×HW×C'
    k = phi(x).flatten(2).transpose(1, 2).unsqueeze(1)
    v = g(x).flatten(2).transpose(1, 2).unsqueeze(1)
    y = F.scaled_dot_product_attention(q, k, v, scale=1.0)  # B×1×HW×C'
    return y.squeeze(1).transpose(1, 2).reshape(b, -1, h, w)


class NonLocalBlock(nn.Module):
    """Residual embedded-Gaussian non-local block: B×C×H×W → B×C×H×W.

    Args:
        n_feats: C.
        inter_channels: C' (default C/2).
    """

    def __init__(self, n_feats: int, inter_channels: int | None = None):
        super().__init__()
        ci = inter_channels or max(1, n_feats // 2)
        self.theta = nn.Conv2d(n_feats, ci, 1)
        self.phi = nn.Conv2d(n_feats, ci, 1)
        self.g = nn.Conv2d(n_feats, ci, 1)
        self.w = nn.Conv2d(ci, n_feats, 1)

    def forward(self, x: Tensor) -> Tensor:
        """B×C×H×W → B×C×H×W."""
        return x + self.w(non_local(x, self.theta, self.phi, self.g))
