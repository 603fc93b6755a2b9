"""Image layout and range conversions, each written once: numpy H×W(×C) ↔ tensor C×H×W, float [0, 1] → uint8,
and the grey rule every predictor follows (replicate to RGB for the network, return the rounded channel mean)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor

__all__ = ["on_rgb", "to_chw", "to_hwc", "to_uint8"]


def to_chw(img: np.ndarray) -> Tensor:
    """H×W (grey) or H×W×C array → C×H×W tensor (contiguous, same dtype; C = 1 for grey)."""
    t = torch.from_numpy(np.ascontiguousarray(img))
    return t[None] if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


def to_hwc(t: Tensor) -> np.ndarray:
    """C×H×W tensor → H×W×C array (H×W when C = 1), contiguous, on the CPU."""
    t = t.detach().cpu()
    return (t[0] if t.shape[0] == 1 else t.permute(1, 2, 0)).contiguous().numpy()


def to_uint8(x: Tensor) -> Tensor:
    """Float in [0, 1] → uint8 on [0, 255]: clamp, round half up (as the release's scoring does)."""
    return torch.floor(x * 255.0 + 0.5).clamp_(0, 255).to(torch.uint8)


def on_rgb(fn: Callable[[Tensor], Tensor], lr: Tensor, *, device: torch.device | str = "cpu",
           dtype: torch.dtype = torch.float32) -> Tensor:
    """Run an RGB float method on a uint8 image, grey or RGB.

    Args:
        fn: 1×3×H×W float in [0, 1] → 1×3×sH×sW float (unclamped).
        lr: uint8 C×H×W, C ∈ {1, 3}. Grey is replicated to 3 channels for ``fn``; the result is the channel
            mean of its output.
        device, dtype: where and in what precision ``fn`` gets its input.

    Returns:
        uint8 C×sH×sW on the CPU (rounded half up, clamped).
    """
    if not isinstance(lr, Tensor):
        raise TypeError(f"expected a torch.Tensor (uint8 C×H×W), got {type(lr).__name__}")
    if lr.dtype != torch.uint8 or lr.ndim != 3 or lr.shape[0] not in (1, 3):
        raise ValueError(f"expected a uint8 C×H×W tensor with C = 1 or 3, got {lr.dtype} {tuple(lr.shape)}")
    grey = lr.shape[0] == 1
    x = lr.to(device)[None].to(dtype) / 255.0
    if grey:
        x = x.expand(-1, 3, -1, -1).contiguous()
    y = fn(x)
    if grey:
        y = y.mean(1, keepdim=True)
    return to_uint8(y[0]).cpu()
