"""PSNR and SSIM exactly as the SR evaluation protocol defines them (``../shared/datasets/README.md``).

* Y channel: ITU-R BT.601 as MATLAB ``rgb2ycbcr``, float64 in [0, 255], **not rounded**:
  ``Y = 16 + (65.481·R + 128.553·G + 24.966·B)/255``. One-channel images are scored on their grey values.
* ``crop_border`` pixels are shaved from each side of both images before scoring.
* PSNR = ``10·log10(255² / MSE)``; identical images give ``inf``.
* SSIM: Wang et al. 2004 as ``ssim_index.m`` / BasicSR ``calculate_ssim``: 11×11 Gaussian window (σ = 1.5,
  normalised), K1 = 0.01, K2 = 0.03, L = 255, 'valid' filtering, mean of the SSIM map.

All arithmetic is float64 on the CPU. Inputs may be numpy arrays or torch tensors, H×W, H×W×C (numpy, channels
last) or C×H×W / B×C×H×W (torch, channels first); uint8 is read on [0, 255], floating values on [0, ``data_range``].
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

__all__ = ["to_y", "prepare", "psnr", "ssim", "psnr_ssim"]

_GAUSS = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
_GAUSS /= _GAUSS.sum()
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2


def _to_numpy_chw(img, data_range: float | None, channels_last: bool | None) -> np.ndarray:
    """Any accepted image → float64 C×H×W (or B×C×H×W) on [0, 255]."""
    try:
        import torch

        is_tensor = isinstance(img, torch.Tensor)
    except ImportError:  # pragma: no cover - torch is a hard dependency
        is_tensor = False
    if is_tensor:
        arr = img.detach().cpu().numpy()
        if channels_last is None:
            channels_last = False
    else:
        arr = np.asarray(img)
        if channels_last is None:
            channels_last = arr.ndim == 3 and arr.shape[-1] in (1, 3) and arr.shape[0] not in (1, 3)
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim == 3 and channels_last:
        arr = np.moveaxis(arr, -1, 0)
    elif arr.ndim == 4 and channels_last:
        arr = np.moveaxis(arr, -1, 1)
    if arr.ndim not in (3, 4) or arr.shape[-3] not in (1, 3):
        raise ValueError(f"metrics: expected 1 or 3 channels (H×W, H×W×C, C×H×W or B×C×H×W), got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float64)
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"metrics: dtype {arr.dtype} not supported; use uint8 or floating")
    scale = 255.0 / (1.0 if data_range is None else float(data_range))
    return arr.astype(np.float64) * scale


def to_y(chw: np.ndarray) -> np.ndarray:
    """C×H×W (or B×C×H×W) float64 on [0, 255] → H×W (or B×H×W) luminance, unrounded BT.601 (grey: as is)."""
    if chw.shape[-3] == 1:
        return chw[..., 0, :, :]
    r, g, b = chw[..., 0, :, :], chw[..., 1, :, :], chw[..., 2, :, :]
    return 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0


def prepare(img, *, crop_border: int = 0, y_channel: bool = True, data_range: float | None = None,
            channels_last: bool | None = None) -> np.ndarray:
    """The scored planes: float64 on [0, 255], Y (or all channels), border shaved. Shape (…)×C'×H'×W'."""
    x = _to_numpy_chw(img, data_range, channels_last)
    x = to_y(x)[..., None, :, :] if y_channel else x
    if crop_border:
        c = int(crop_border)
        if x.shape[-2] <= 2 * c or x.shape[-1] <= 2 * c:
            raise ValueError(f"metrics: crop_border={c} leaves nothing of a {x.shape[-2]}×{x.shape[-1]} image")
        x = x[..., c:-c, c:-c]
    return x


def _pair(sr, hr, crop_border, y_channel, data_range, channels_last):
    a = prepare(sr, crop_border=crop_border, y_channel=y_channel, data_range=data_range, channels_last=channels_last)
    b = prepare(hr, crop_border=crop_border, y_channel=y_channel, data_range=data_range, channels_last=channels_last)
    if a.shape != b.shape:
        raise ValueError(f"metrics: shapes differ after preparation: sr {a.shape} vs hr {b.shape}")
    return a, b


def _psnr_planes(a: np.ndarray, b: np.ndarray):
    mse = np.mean((a - b) ** 2, axis=(-3, -2, -1))
    with np.errstate(divide="ignore"):
        out = 10.0 * np.log10(255.0**2 / mse)
    return float(out) if np.ndim(out) == 0 else out


def _filter(x: np.ndarray) -> np.ndarray:
    """Gaussian 11×11 'valid' filtering of the last two dims (separable, float64)."""
    y = ndimage.correlate1d(x, _GAUSS, axis=-2, mode="constant")[..., 5:-5, :]
    return ndimage.correlate1d(y, _GAUSS, axis=-1, mode="constant")[..., 5:-5]


def _ssim_planes(a: np.ndarray, b: np.ndarray):
    if a.shape[-2] < 11 or a.shape[-1] < 11:
        raise ValueError(f"ssim: the scored image must be at least 11×11, got {a.shape[-2]}×{a.shape[-1]}")
    stack = np.stack([a, b, a * a, b * b, a * b])
    mu1, mu2, aa, bb, ab = _filter(stack)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1, s2, s12 = aa - mu1_sq, bb - mu2_sq, ab - mu12
    smap = ((2 * mu12 + _C1) * (2 * s12 + _C2)) / ((mu1_sq + mu2_sq + _C1) * (s1 + s2 + _C2))
    out = smap.mean(axis=(-3, -2, -1))
    return float(out) if np.ndim(out) == 0 else out


def psnr(sr, hr, *, crop_border: int = 0, y_channel: bool = True, data_range: float | None = None,
         channels_last: bool | None = None):
    """PSNR in dB (float, or an array of B values for batched input). ``inf`` for identical images.

    Args:
        sr, hr: the same shape; uint8 on [0, 255] or floating on [0, ``data_range``] (default 1.0).
        crop_border: pixels shaved from each side (the protocol uses the scale).
        y_channel: score the BT.601 Y channel (protocol) instead of all channels (RGB variant).
    """
    return _psnr_planes(*_pair(sr, hr, crop_border, y_channel, data_range, channels_last))


def ssim(sr, hr, *, crop_border: int = 0, y_channel: bool = True, data_range: float | None = None,
         channels_last: bool | None = None):
    """Gaussian SSIM (float, or B values). For RGB (``y_channel=False``) the mean over channels."""
    return _ssim_planes(*_pair(sr, hr, crop_border, y_channel, data_range, channels_last))


def psnr_ssim(sr, hr, *, crop_border: int = 0, y_channel: bool = True, data_range: float | None = None,
              channels_last: bool | None = None) -> tuple[float, float]:
    """Both metrics, preparing the planes once."""
    a, b = _pair(sr, hr, crop_border, y_channel, data_range, channels_last)
    return _psnr_planes(a, b), _ssim_planes(a, b)


def psnr_from_mse(mse: float, peak: float = 255.0) -> float:
    """``10·log10(peak² / mse)``; ``inf`` for zero error."""
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)
