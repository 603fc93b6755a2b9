"""Our models beside published methods: one Markdown table of PSNR-Y / SSIM-Y per set and scale.

``ignn-lab compare RESULTS.json … --methods SRCNN,FSRCNN,VDSR,CARN-M`` (and :func:`comparison_table`) reads the
``results.json`` of ``ignn-lab evaluate`` runs and sets each of our models beside the published values of
``shared/reference/published_results.tsv`` (each published row names its source there). Cells evaluated on a
subset of a set (``--limit``) are refused: a published mean is over the whole set.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from pathlib import Path
from typing import Iterable

from ignn_lab.engine.published import read_published

__all__ = ["comparison_table", "paired_difference", "paired_table", "read_cells"]

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


def paired_difference(a: str | os.PathLike, b: str | os.PathLike) -> list[dict]:
    """Model A minus model B, image by image, per set and scale: how large a difference is, and how sure.

    Both ``results.json`` files must score the same images (matched by set, scale and image name). Per cell:
    the mean PSNR difference (equal to the difference of the set means), the standard deviation of the
    per-image differences, the standard error of the mean and a 95 % interval (Student's t), the images where A
    is better / worse, and the mean SSIM difference. A difference whose interval excludes 0 is consistent
    across the images of the set; it does not measure the run-to-run noise of training (another seed does).

    Raises:
        ValueError: a cell whose images differ between the two files, or no common cell.
    """
    from scipy.stats import t as student_t

    def per_image(path):
        res = json.loads(Path(path).read_text())
        model = {r["model"] for r in res["rows"]}
        cells: dict[tuple[int, str], dict[str, tuple[float, float]]] = {}
        for r in res["rows"]:
            cells.setdefault((int(r["scale"]), r["set"]), {})[r["image"]] = (float(r["psnr"]), float(r["ssim"]))
        return ", ".join(sorted(model)), cells

    name_a, ca = per_image(a)
    name_b, cb = per_image(b)
    common = [c for c in ca if c in cb]
    if not common:
        raise ValueError(f"{a} and {b} share no (scale, set) cell: score the same sets and scales with both models")
    out = []
    for scale, st in sorted(common, key=lambda c: (c[0], SETS.index(c[1]) if c[1] in SETS else len(SETS), c[1])):
        ia, ib = ca[(scale, st)], cb[(scale, st)]
        if set(ia) != set(ib):
            raise ValueError(f"{st} ×{scale}: the two files score different images ({len(ia)} in {a}, {len(ib)} "
                             f"in {b}); a paired comparison needs the same images")
        d = [ia[k][0] - ib[k][0] for k in sorted(ia)]
        n = len(d)
        mean = statistics.fmean(d)
        sd = statistics.stdev(d) if n > 1 else float("nan")
        se = sd / math.sqrt(n) if n > 1 else float("nan")
        half = float(student_t.ppf(0.975, n - 1)) * se if n > 1 else float("nan")
        out.append({"a": name_a, "b": name_b, "set": st, "scale": scale, "images": n, "mean_psnr_diff": mean,
                    "sd": sd, "se": se, "ci95": (mean - half, mean + half), "a_better": sum(x > 0 for x in d),
                    "a_worse": sum(x < 0 for x in d),
                    "mean_ssim_diff": statistics.fmean(ia[k][1] - ib[k][1] for k in ia)})
    return out


def paired_table(cells: list[dict]) -> str:
    """:func:`paired_difference` as a Markdown table."""
    lines = [f"{cells[0]['a']} − {cells[0]['b']}, per image (PSNR-Y dB; 95 % interval of the mean, Student's t)", "",
             "| scale | set | images | ΔPSNR | sd | 95 % interval | A better / worse | ΔSSIM |",
             "|---|---|---|---|---|---|---|---|"]
    for c in cells:
        lo, hi = c["ci95"]
        lines.append(f"| ×{c['scale']} | {c['set']} | {c['images']} | {c['mean_psnr_diff']:+.3f} | {c['sd']:.3f} | "
                     f"[{lo:+.3f}, {hi:+.3f}] | {c['a_better']} / {c['a_worse']} | {c['mean_ssim_diff']:+.4f} |")
    return "\n".join(lines) + "\n"
