"""The checkpoints the kit ships, trained by ``ignn-lab train`` (``ignn_lab/weights/<name>.pt``).

A shipped name (``ignn-lite-x2``, ``edsr-lite-x2``, ...) resolves wherever a model is asked for: ``evaluate``,
``upscale``, ``explore`` and ``ignn-lab models``. Each file is an ordinary kit checkpoint (weights, model config,
provenance with the exact training command and its final validation PSNR), read with ``weights_only=True``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["list_pretrained", "pretrained_path", "weights_dir"]


def weights_dir() -> Path:
    """``ignn_lab/weights``: where the shipped checkpoints live."""
    return Path(__file__).resolve().parents[1] / "weights"


def list_pretrained() -> dict[str, Path]:
    """Shipped checkpoint names → their files, sorted by name."""
    d = weights_dir()
    return {p.stem: p for p in sorted(d.glob("*.pt"))} if d.is_dir() else {}


def pretrained_path(name: str) -> Path | None:
    """The file of the shipped checkpoint ``name``, or None when no such checkpoint ships."""
    return list_pretrained().get(name)
