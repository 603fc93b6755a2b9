"""Patch extraction and overlap-averaged reassembly with the released padding rule (spec §2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["calc_padding", "grid_size", "im2patch", "im2patch_rows", "patch2im"]


def calc_padding(length: int, patch_size: int = 3, stride: int = 2) -> tuple[int, int]:
    """Released ``calc_padding``: ``pad = (-(L - p)) mod t``; (before, after) = (⌊pad/2⌋, ⌈pad/2⌉)."""
    if length < patch_size:
        raise ValueError(f"a length of {length} is smaller than the patch size {patch_size}")
    pad = (-(length - patch_size)) % stride
    return pad // 2, pad - pad // 2


def grid_size(length: int, patch_size: int = 3, stride: int = 2) -> int:
    """Number of patches along a dimension of ``length`` (⌊L/2⌋ for p = 3, t = 2)."""
    before, after = calc_padding(length, patch_size, stride)
    return (length + before + after - patch_size) // stride + 1


def im2patch(x: Tensor, patch_size: int = 3,
             stride: int = 2) -> tuple[Tensor, tuple[int, int], tuple[int, int, int, int]]:
    """All ``patch_size``² patches with ``stride``, zero padding at the bottom/right as released.

    Args:
        x: B×C×H×W, any floating dtype, any device.

    Returns:
        patches: B×M×(C·p·p), M = gh·gw patches numbered row-major; vectors ordered (c, py, px).
        grid: (gh, gw).
        pads: (top, bottom, left, right).
    """
    if x.ndim != 4:
        raise ValueError(f"im2patch expects B×C×H×W, got shape {tuple(x.shape)}")
    top, bottom = calc_padding(x.shape[2], patch_size, stride)
    left, right = calc_padding(x.shape[3], patch_size, stride)
    if top or bottom or left or right:
        x = F.pad(x, (left, right, top, bottom))
    gh = (x.shape[2] - patch_size) // stride + 1
    gw = (x.shape[3] - patch_size) // stride + 1
    cols = F.unfold(x, patch_size, stride=stride)  # B×(C·p·p)×M
    return cols.transpose(1, 2), (gh, gw), (top, bottom, left, right)


def im2patch_rows(x: Tensor, row_start: int, row_stop: int, patch_size: int = 3, stride: int = 2, *,
                  columns: bool = False) -> Tensor:
    """Rows ``row_start..row_stop-1`` of the patch grid of :func:`im2patch`, without padding the whole image.

    Args:
        x: B×C×H×W, any floating dtype, any device.
        row_start, row_stop: a range of patch-grid rows, ``0 <= row_start < row_stop <= gh``.

        columns: return the column layout B×(C·p·p)×L of ``F.unfold`` instead (no transpose copy).

    Returns:
        B×L×(C·p·p) with L = (row_stop-row_start)·gw, contiguous, patches row-major; equal to
        ``im2patch(x)[0]`` restricted to those grid rows (its transpose, contiguous, with ``columns=True``).
    """
    if x.ndim != 4:
        raise ValueError(f"im2patch_rows expects B×C×H×W, got shape {tuple(x.shape)}")
    gh = grid_size(x.shape[2], patch_size, stride)
    if not 0 <= row_start < row_stop <= gh:
        raise ValueError(f"patch rows [{row_start}, {row_stop}) are outside the grid of {gh} rows")
    top, _ = calc_padding(x.shape[2], patch_size, stride)
    left, right = calc_padding(x.shape[3], patch_size, stride)
    a = row_start * stride - top  # first image row the band needs (may be negative: top padding)
    b = (row_stop - 1) * stride + patch_size - top  # one past the last (may exceed H: bottom padding)
    band = x[:, :, max(a, 0): min(b, x.shape[2])]
    pad_top, pad_bottom = max(0, -a), max(0, b - x.shape[2])
    if pad_top or pad_bottom or left or right:
        band = F.pad(band, (left, right, pad_top, pad_bottom))
    if columns:
        return F.unfold(band, patch_size, stride=stride)
    bsz, c, _, w = band.shape
    gw = (w - patch_size) // stride + 1
    s_b, s_c, s_h, s_w = band.stride()
    view = band.as_strided((bsz, row_stop - row_start, gw, c, patch_size, patch_size),
                           (s_b, stride * s_h, stride * s_w, s_c, s_h, s_w))
    return view.reshape(bsz, (row_stop - row_start) * gw, c * patch_size * patch_size)  # one gather copy


def patch2im(patches: Tensor, grid: tuple[int, int], patch_size: int, stride: int,
             pads: tuple[int, int, int, int]) -> Tensor:
    """Sum patches onto a canvas, divide by the per-pixel cover count, crop ``pads``.

    Args:
        patches: B×(C·P·P)×M (column layout, as ``F.unfold`` returns) or B×M×(C·P·P) is *not* accepted:
            pass the column layout. M = gh·gw.
        grid: (gh, gw).
        patch_size: P. stride: S.
        pads: (top, bottom, left, right) cropped from the canvas.

    Returns:
        B×C×H×W with H = (gh-1)·S + P - top - bottom (likewise W): the overlap average.
    """
    gh, gw = grid
    if patches.shape[-1] != gh * gw:
        raise ValueError(f"patch2im: {patches.shape[-1]} patches do not fill a {gh}×{gw} grid")
    size = ((gh - 1) * stride + patch_size, (gw - 1) * stride + patch_size)
    summed = F.fold(patches, size, patch_size, stride=stride)
    ones = torch.ones((1, patch_size * patch_size, gh * gw), dtype=patches.dtype, device=patches.device)
    count = F.fold(ones, size, patch_size, stride=stride)
    out = summed / count
    top, bottom, left, right = pads
    return out[:, :, top: size[0] - bottom, left: size[1] - right]
