"""MATLAB-exact bicubic ``imresize``, vectorised in torch.

Semantics (``../shared/datasets/README.md``, evaluation protocol, step 2):

* cubic kernel with a = -0.5 (width 4); when downscaling, the antialiased kernel ``h(x) = s·cubic(s·x)``
  (width ``4/s``); output size ``ceil(scale·size)``;
* per output index ``x`` (1-based): ``u = x/scale + 0.5·(1 - 1/scale)``, ``left = floor(u - width/2)``,
  ``P = ceil(width) + 2`` taps, weights normalised to sum 1, out-of-range input indices **clamped**
  (replicated border), taps that are zero for every output dropped;
* the height is resized first, then the width;
* uint8 input: the input and output of every 1-D pass are uint8 (round half up, clip to [0, 255]), as MATLAB
  does for uint8 images. Float input is resized in its own dtype without rounding (MATLAB's double path).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

__all__ = ["cubic", "contributions", "imresize", "imresize_np", "output_size"]


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * (
        (ax > 1) & (ax <= 2)
    )


def _raw_contributions(in_len: int, out_len: int, scale: float, antialias: bool) -> tuple[np.ndarray, np.ndarray]:
    """Weights (normalised) and *unclamped* 1-based indices, all taps (MATLAB ``contributions`` before clamping)."""
    if in_len < 1 or out_len < 1:
        raise ValueError(f"imresize: lengths must be positive, got in={in_len}, out={out_len}")
    width = 4.0
    if scale < 1 and antialias:
        def h(v):
            return scale * cubic(scale * v)
        width = width / scale
    else:
        h = cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    ind = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    w = h(u[:, None] - ind)
    w = w / w.sum(axis=1, keepdims=True)
    keep = np.any(w != 0, axis=0)
    return w[:, keep], ind[:, keep].astype(np.int64)


def _border_index(ind: np.ndarray, n: int, border: str) -> np.ndarray:
    """Map 0-based indices outside [0, n) into it: ``replicate`` clamps, ``symmetric`` mirrors (edge repeated)."""
    if border == "replicate":
        return np.clip(ind, 0, n - 1)
    if border == "symmetric":
        period = 2 * n
        m = np.mod(ind, period)
        return np.where(m < n, m, period - 1 - m)
    raise ValueError(f"border must be 'replicate' or 'symmetric', got {border!r}")


@lru_cache(maxsize=256)
def contributions(in_len: int, out_len: int, scale: float, antialias: bool = True,
                  border: str = "replicate") -> tuple[np.ndarray, np.ndarray]:
    """MATLAB ``contributions()``; out-of-range indices clamped (``replicate``) or mirrored (``symmetric``).

    Args:
        in_len: input length along the dimension.
        out_len: output length.
        scale: the scale factor for this dimension (out/in, e.g. 0.5 or 1/3 or 4).
        antialias: widen the kernel when downscaling (MATLAB's default).

    Returns:
        weights: out_len×P float64, rows sum to 1.  indices: out_len×P int64, 0-based, in [0, in_len).
    """
    w, ind = _raw_contributions(in_len, out_len, scale, antialias)
    ind = _border_index(ind - 1, in_len, border)
    w, ind = np.ascontiguousarray(w), np.ascontiguousarray(ind)
    w.setflags(write=False)
    ind.setflags(write=False)
    return w, ind


@lru_cache(maxsize=256)
def _polyphase(in_len: int, out_len: int, scale: float, antialias: bool, border: str = "replicate"):
    """A strided form of the resampling when the weights repeat: ``(pad_index, step, phases)``.

    Output ``i = φ + q·n`` reads padded inputs ``start_φ[p] + step·n`` with weights ``w_φ[p]``; the input is first
    padded through ``pad_index`` (clamped or mirrored indices), which is exactly MATLAB's border handling. Returns
    None when the weights do not repeat (non-integer ratios), and the caller falls back to gathering.
    """
    w, raw = _raw_contributions(in_len, out_len, scale, antialias)
    raw = raw - 1  # 0-based, unclamped
    if scale >= 1 and float(scale).is_integer():
        q, step = int(scale), 1
    elif scale < 1 and abs(1 / scale - round(1 / scale)) < 1e-9:
        q, step = 1, int(round(1 / scale))
    else:
        return None
    if out_len % q:
        return None
    n = np.arange(out_len // q)
    phases = []
    for phi in range(q):
        wp, rp = w[phi::q], raw[phi::q]
        if not (np.array_equal(rp - rp[0], np.repeat((step * n)[:, None], rp.shape[1], 1))
                and np.allclose(wp, wp[0], rtol=0, atol=1e-13)):
            return None
        phases.append((rp[0].tolist(), w[phi].tolist()))
    before = max(0, -int(raw.min()))
    after = max(0, int(raw.max()) - (in_len - 1))
    pad_index = None
    if before or after:
        pad_index = torch.from_numpy(_border_index(np.arange(-before, in_len + after), in_len, border))
    return pad_index, step, [([i + before for i in starts], wts) for starts, wts in phases]


@lru_cache(maxsize=256)
def _contributions_t(in_len: int, out_len: int, scale: float, antialias: bool, border: str, dtype: torch.dtype,
                     device: torch.device) -> tuple[Tensor, Tensor]:
    w, ind = contributions(in_len, out_len, scale, antialias, border)
    return torch.tensor(w, dtype=dtype, device=device), torch.tensor(ind, device=device)


def output_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """``ceil(scale·size)`` per dimension, robust to 1/3-style float error (MATLAB's rule)."""
    return tuple(max(1, math.ceil(n * scale - 1e-9)) for n in size)  # type: ignore[return-value]


def _round_uint8(v: Tensor) -> Tensor:
    return torch.clamp(torch.floor(v + 0.5), 0, 255)


def _resize_polyphase(x: Tensor, dim: int, plan, n_out: int) -> Tensor:
    pad_index, step, phases = plan
    if pad_index is not None:
        x = x.index_select(dim, pad_index.to(x.device))
    n_per = n_out // len(phases)
    outs = []
    for starts, wts in phases:
        acc = None
        for a, wp in zip(starts, wts):
            term = x.narrow(dim, a, step * (n_per - 1) + 1)
            if step > 1:
                idx = [slice(None)] * x.ndim
                idx[dim] = slice(None, None, step)
                term = term[tuple(idx)]
            acc = term * wp if acc is None else acc.add_(term, alpha=wp)
        outs.append(acc)
    if len(outs) == 1:
        return outs[0]
    y = torch.stack(outs, dim=dim + 1)
    shape = list(x.shape)
    shape[dim] = n_out
    return y.reshape(shape)


def _resize_dim(x: Tensor, dim: int, wt: Tensor, it: Tensor) -> Tensor:
    shape = [1] * x.ndim
    shape[dim] = -1
    out = None
    for p in range(wt.shape[1]):
        term = x.index_select(dim, it[:, p]) * wt[:, p].view(shape)
        out = term if out is None else out.add_(term)
    return out


def imresize(
    x: Tensor,
    scale: float | tuple[float, float] | None = None,
    *,
    size: tuple[int, int] | None = None,
    antialias: bool = True,
    border: str = "replicate",
) -> Tensor:
    """Resize the last two dimensions with MATLAB's bicubic ``imresize``.

    Args:
        x: ``...×H×W`` tensor (any leading batch/channel dims), uint8 or floating, CPU or CUDA.
            uint8 is processed as MATLAB processes uint8 images (float64 arithmetic, each 1-D pass rounded
            half up and clipped to [0, 255]); floating tensors are resized in their own dtype, unrounded.
        scale: the factor (e.g. ``0.5``, ``1/3``, ``4``), or a (height, width) pair. Give ``scale`` or ``size``.
        size: the output (height, width); the factor per dimension is then ``out/in``.
        antialias: antialiased kernel when downscaling (MATLAB's default, ``True``).
        border: ``replicate`` (the protocol: MATLAB clamps indices) or ``symmetric`` (mirrored with the edge
            repeated, as the released IGNN's ``utils/imresize.py`` pads when it makes the son).

    Returns:
        ``...×H'×W'`` tensor with the input's dtype and device.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"imresize expects a torch.Tensor, got {type(x).__name__}; use imresize_np for arrays")
    if x.ndim < 2:
        raise ValueError(f"imresize expects ...×H×W, got shape {tuple(x.shape)}")
    if (scale is None) == (size is None):
        raise ValueError("imresize: give exactly one of scale= or size=")
    h, w = x.shape[-2:]
    if h == 0 or w == 0:
        raise ValueError(f"imresize: empty input of shape {tuple(x.shape)}")
    if size is not None:
        oh, ow = int(size[0]), int(size[1])
        sh, sw = oh / h, ow / w
    else:
        sh, sw = (scale, scale) if isinstance(scale, (int, float)) else scale
        if sh <= 0 or sw <= 0:
            raise ValueError(f"imresize: scale must be positive, got {scale}")
        oh, ow = output_size((h, w), sh)[0], output_size((h, w), sw)[1]
    is_uint8 = x.dtype == torch.uint8
    if not (is_uint8 or x.is_floating_point()):
        raise TypeError(f"imresize: dtype {x.dtype} not supported; use uint8 or a floating dtype")
    v = x.to(torch.float64) if is_uint8 else x
    # MATLAB resizes the dimension with the smaller scale first; on ties, height first.
    order = (-2, -1) if sh <= sw else (-1, -2)
    for dim in order:
        n_in, n_out, s = (h, oh, sh) if dim == -2 else (w, ow, sw)
        if n_in == n_out and s == 1:
            continue
        plan = _polyphase(n_in, n_out, float(s), antialias, border)
        if plan is not None:
            v = _resize_polyphase(v, v.ndim + dim, plan, n_out)
        else:
            wts, ind = _contributions_t(n_in, n_out, float(s), antialias, border, v.dtype, v.device)
            v = _resize_dim(v, v.ndim + dim, wts, ind)
        if is_uint8:
            v = _round_uint8(v)
    return v.to(torch.uint8) if is_uint8 else v


def imresize_np(img: np.ndarray, scale: float | None = None, *, size: tuple[int, int] | None = None,
                antialias: bool = True, border: str = "replicate") -> np.ndarray:
    """``imresize`` for an H×W or H×W×C numpy array (uint8 or float)."""
    t = torch.from_numpy(np.ascontiguousarray(img))
    if img.ndim == 3:
        t = t.permute(2, 0, 1)
    out = imresize(t, scale, size=size, antialias=antialias, border=border)
    if img.ndim == 3:
        out = out.permute(1, 2, 0)
    return out.contiguous().numpy()
