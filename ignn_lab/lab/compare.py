"""Our models beside published methods: one Markdown table of PSNR-Y / SSIM-Y per set and scale.

``ignn-lab compare RESULTS.json … --methods SRCNN,FSRCNN,VDSR,CARN-M`` (and :func:`comparison_table`) reads the
``results.json`` of ``ignn-lab evaluate`` runs and sets each of our models beside the published values of
``shared/reference/published_results.tsv`` (each published row names its source there). Cells evaluated on a
subset of a set (``--limit``) are refused: a published mean is over the whole set.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from ignn_lab.engine.published import read_published

__all__ = ["comparison_table", "read_cells"]

SETS = ("Set5", "Set14", "B100", "Urban100")


def read_cells(paths: Iterable[str | os.PathLike]) -> dict[tuple[str, int, str], tuple[float, float]]:
    """``{(model, scale, set): (psnr, ssim)}`` from ``results.json`` files (later files win)."""
    cells = {}
    for p in paths:
        res = json.loads(Path(p).read_text())
        limit = res.get("provenance", {}).get("limit")
        if limit:
            raise ValueError(f"{p} scored only the first {limit} images of each set; a comparison with published "
                             "means needs whole sets")
        for c in res["summary"]:
            cells[(c["model"], int(c["scale"]), c["set"])] = (float(c["psnr"]), float(c["ssim"]))
    return cells


def comparison_table(cells: dict[tuple[str, int, str], tuple[float, float]], *,
                     methods: Iterable[str] = ("Bicubic", "SRCNN", "FSRCNN", "VDSR", "CARN-M"),
                     sets: Iterable[str] = SETS, published: dict | None = None, bold_best: bool = True) -> str:
    """A Markdown table: one row per (scale, method or model), one ``PSNR / SSIM`` column per set.

    Args:
        cells: our values (see :func:`read_cells`).
        methods: published methods shown above our models at each scale (rows missing there are skipped).
        sets: the columns.
        published: ``read_published()`` output (default: the shared table).
        bold_best: bold the best PSNR of each column at each scale.
    """
    published = read_published() if published is None else published
    sets = list(sets)
    ours = sorted({(m, s) for (m, s, _) in cells}, key=lambda ms: (ms[1], ms[0]))
    scales = sorted({s for _, s in ours})
    lines = ["| scale | method | " + " | ".join(sets) + " |", "|---|---|" + "---|" * len(sets)]
    for scale in scales:
        rows: list[tuple[str, list[tuple[float, float | None] | None]]] = []
        for method in methods:
            vals = [published.get((method, scale, st)) for st in sets]
            if any(vals):
                rows.append((method, [(v.psnr, v.ssim) if v else None for v in vals]))
        for model, s in ours:
            if s == scale:
                rows.append((f"**{model}** (ours)", [cells.get((model, scale, st)) for st in sets]))
        best = [max((r[1][i][0] for r in rows if r[1][i]), default=None) for i in range(len(sets))]
        for name, vals in rows:
            out = []
            for i, v in enumerate(vals):
                if v is None:
                    out.append("–")
                    continue
                psnr = f"{v[0]:.2f}"
                if bold_best and best[i] is not None and v[0] == best[i]:
                    psnr = f"**{psnr}**"
                out.append(psnr + (f" / {v[1]:.4f}" if v[1] is not None else ""))
            lines.append(f"| ×{scale} | {name} | " + " | ".join(out) + " |")
    return "\n".join(lines) + "\n"
