"""Static matplotlib figures (headless Agg); import the submodule you need: ``matches``, ``compare``.

:func:`save_figure` is how the kit writes every figure: atomically, in the format the suffix names.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from ignn_lab.data.io import atomic_write_bytes

__all__ = ["save_figure"]


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write a matplotlib figure atomically as ``.png``, ``.pdf`` or ``.svg`` (by the suffix; PNG otherwise)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt if fmt in ("png", "pdf", "svg") else "png", dpi=dpi)
    return atomic_write_bytes(path, buf.getvalue())
