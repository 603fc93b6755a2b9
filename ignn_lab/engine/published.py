"""Published SR results (``shared/reference/published_results.tsv``) for side-by-side tables."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from ignn_lab.data.datasets import reference_root

__all__ = ["PublishedValue", "read_published", "published_method"]

#: kit model names → the method name used in the published table.
_METHOD = {"bicubic": "Bicubic", "edsr": "EDSR", "ignn": "IGNN", "official-ignn": "IGNN"}


@dataclass(frozen=True)
class PublishedValue:
    method: str
    scale: int
    set: str
    psnr: float
    ssim: float | None
    source: str


def published_method(model: str) -> str | None:
    """The published method a kit model name corresponds to, or None."""
    return _METHOD.get(str(model).lower())


def read_published(path: str | os.PathLike | None = None) -> dict[tuple[str, int, str], PublishedValue]:
    """``{(method, scale, set): PublishedValue}``; empty when the table is not available."""
    if path is None:
        root = reference_root()
        if root is None:
            return {}
        path = root / "published_results.tsv"
    p = Path(path)
    if not p.is_file():
        return {}
    out = {}
    with open(p, newline="") as f:
        for r in csv.DictReader(f, delimiter="\t"):
            ssim = None if r["ssim"].strip().upper() in ("", "NA") else float(r["ssim"])
            v = PublishedValue(r["method"], int(r["scale"]), r["set"], float(r["psnr"]), ssim, r["source"])
            out[(v.method, v.scale, v.set)] = v
    return out
