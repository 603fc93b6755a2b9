"""Mod-crop, bicubic LR generation (the BI degradation) and the IGNN son image, with an optional LR cache."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ignn_lab.data.convert import to_chw
from ignn_lab.data.imresize import imresize, imresize_np
from ignn_lab.data.io import atomic_write_bytes, read_image

__all__ = ["modcrop", "bicubic_lr", "make_son", "LRCache"]


def modcrop(img: np.ndarray | Tensor, scale: int):
    """Crop the bottom/right so both sides are multiples of ``scale``.

    numpy arrays are H×W or H×W×C; tensors are ``...×H×W``.
    """
    if scale < 1:
        raise ValueError(f"modcrop: scale must be >= 1, got {scale}")
    if isinstance(img, Tensor):
        h, w = img.shape[-2:]
        return img[..., : h - h % scale, : w - w % scale]
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def bicubic_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """LR = MATLAB ``imresize(modcrop(hr, scale), 1/scale, 'bicubic')`` on uint8, as the protocol defines it."""
    if hr.dtype != np.uint8:
        raise TypeError(f"bicubic_lr expects uint8 HR images, got {hr.dtype}")
    return imresize_np(modcrop(hr, scale), 1.0 / scale)


def make_son(lr: Tensor, graph_scale: int, *, border: str = "symmetric") -> Tensor:
    """IGNN's son (spec §1): crop to a multiple of g, MATLAB-style bicubic by 1/g in float, clamp to [0, 1].

    The released loader's ``utils/imresize.py`` pads borders by mirroring (``symmetric``), unlike MATLAB, which
    clamps; ``border="symmetric"`` (default) reproduces the release's son (and the parity fixtures' ``son``) to 1e-12.

    Args:
        lr: B×C×H×W float in [0, 1].
        graph_scale: g (2 or 3).
        border: ``symmetric`` (released son) or ``replicate`` (MATLAB).

    Returns:
        B×C×⌊H/g⌋×⌊W/g⌋, same dtype/device.
    """
    if not lr.is_floating_point():
        raise TypeError(f"make_son expects a floating tensor in [0, 1], got {lr.dtype}")
    return imresize(modcrop(lr, graph_scale), 1.0 / graph_scale, border=border).clamp_(0.0, 1.0)


class LRCache:
    """On-disk cache of bicubic LR images, keyed by the HR file's content hash and the scale.

    Files are written atomically as PNG under ``root/<sha256[:24]>_x<scale>.png``; a corrupt entry is recomputed.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()

    @staticmethod
    def _digest(path: Path) -> str:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()[:24]

    def path_for(self, hr_path: str | os.PathLike, scale: int) -> Path:
        return self.root / f"{self._digest(Path(hr_path))}_x{scale}.png"

    def get(self, hr_path: str | os.PathLike, scale: int, hr: np.ndarray | None = None) -> np.ndarray:
        """The LR for ``hr_path`` at ``scale``, computed (and stored) on a miss."""
        from PIL import Image

        p = self.path_for(hr_path, scale)
        if p.is_file():
            try:
                return read_image(p)
            except ValueError:
                pass  # corrupt entry: recompute below
        lr = bicubic_lr(read_image(hr_path) if hr is None else hr, scale)
        buf = io.BytesIO()
        Image.fromarray(lr).save(buf, format="PNG")
        atomic_write_bytes(p, buf.getvalue())
        return lr


def to_tensor01(img: np.ndarray, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> Tensor:
    """uint8 H×W(×3) → 1×C×H×W float in [0, 1]."""
    return to_chw(img)[None].to(device=device, dtype=dtype) / 255.0
