"""Ablations of GraphAgg*: one switch at a time from the defaults, scored with the evaluation protocol.

``graphagg_ablation`` evaluates GraphAgg* once per variant (and bicubic as the floor) through
:func:`ignn_lab.engine.evaluate.evaluate`, and writes ``ablation.json``, ``ablation.md`` and ``ablation.png``
into ``out`` (each variant's own ``results.json`` in ``out/<variant>/``). ``ignn-lab ablate`` and the notebook
``04_ablate.ipynb`` call it. ``ablation_markdown`` and ``ablation_figure`` also draw the learned ablation
(:mod:`ignn_lab.lab.ablate_learned`).
"""

from __future__ import annotations

import os
from typing import Iterable, Mapping

from ignn_lab.data.io import atomic_write_bytes, json_bytes
from ignn_lab.data.outputs import OutputSet
from ignn_lab.viz import save_figure

__all__ = ["VARIANTS", "DEFAULT_VARIANTS", "graphagg_ablation", "ablation_figure", "ablation_markdown"]

#: Named one-switch variants of GraphAgg* (options of ``evaluate(model="graphagg-star", ...)``).
VARIANTS: dict[str, dict] = {
    "default": {},
    "no-adapn": {"adapn": False},
    "distance-weighting": {"weighting": "distance"},
    "k1": {"k": 1},
    "k10": {"k": 10},
    "global-search": {"window": None},
    "same-scale": {"cross_scale": False},
    "vgg-random": {"embedding": "vgg-random"},
}
#: The variants run when none are named (``vgg-random`` is left out: several times slower on a CPU).
DEFAULT_VARIANTS = ("default", "no-adapn", "distance-weighting", "k1", "k10", "global-search", "same-scale")


def _resolve(variants: Iterable[str] | Mapping[str, dict] | None) -> dict[str, dict]:
    if variants is None:
        return {v: VARIANTS[v] for v in DEFAULT_VARIANTS}
    if isinstance(variants, Mapping):
        return {str(k): dict(v) for k, v in variants.items()}
    out = {}
    for name in variants:
        if name not in VARIANTS:
            raise ValueError(f"unknown GraphAgg* variant {name!r}; known: {', '.join(VARIANTS)} "
                             "(or pass a dict name -> options)")
        out[name] = VARIANTS[name]
    if not out:
        raise ValueError("graphagg_ablation needs at least one variant")
    return out


def graphagg_ablation(variants: Iterable[str] | Mapping[str, dict] | None = None,
                      sets: Iterable[str] = ("Set5",), scales: Iterable[int] = (2,), *,
                      out: str | os.PathLike, data_root: str | os.PathLike | None = None,
                      limit: int | None = None, bicubic: bool = True, progress: bool = True) -> dict:
    """Evaluate GraphAgg* once per variant; write the comparison to ``out``.

    Args:
        variants: names from :data:`VARIANTS`, or a dict ``name -> options`` (e.g. ``{"k3": {"k": 3}}``);
            default :data:`DEFAULT_VARIANTS`.
        sets, scales, data_root, limit: as :func:`ignn_lab.engine.evaluate.evaluate`.
        out: folder for ``ablation.json``, ``ablation.md``, ``ablation.png`` and one sub-folder per variant.
        bicubic: also evaluate bicubic, the floor every variant is compared with.
        progress: progress bars.

    Returns:
        ``{"rows": [{"variant", "options", "set", "scale", "psnr", "ssim", "n_images", "seconds",
        "dpsnr_vs_default", "dpsnr_vs_bicubic"}], "sets", "scales", "limit"}`` (also ``ablation.json``).
    """
    from tqdm.auto import tqdm

    from ignn_lab.engine.evaluate import evaluate

    spec = _resolve(variants)
    sets, scales = [sets] if isinstance(sets, str) else list(sets), [int(s) for s in scales]
    runs = ([("bicubic", "bicubic", {})] if bicubic else []) + [(v, "graphagg-star", o) for v, o in spec.items()]
    members = [v for v, _, _ in runs] + ["ablation.json", "ablation.md", "ablation.png"]
    rows = []
    with OutputSet(out, members, what="output folder (--out)") as outs:
        for variant, model, opts in tqdm(runs, desc="ablation", unit="variant", disable=not progress):
            res = evaluate(model, sets, scales, out=outs.path(variant), data_root=data_root, limit=limit,
                           progress=False, **opts)
            for cell in res["summary"]:
                rows.append({"variant": variant, "options": dict(opts), "set": cell["set"],
                             "scale": cell["scale"], "psnr": cell["psnr"], "ssim": cell["ssim"],
                             "n_images": cell["n_images"], "seconds": res["provenance"]["seconds"]})
        for r in rows:
            for ref in ("default", "bicubic"):
                base = next((b for b in rows
                             if b["variant"] == ref and (b["set"], b["scale"]) == (r["set"], r["scale"])), None)
                r[f"dpsnr_vs_{ref}"] = None if base is None else r["psnr"] - base["psnr"]
        report = {"rows": rows, "sets": sets, "scales": scales, "limit": limit}
        atomic_write_bytes(outs.path("ablation.json"), json_bytes(report))
        atomic_write_bytes(outs.path("ablation.md"), ablation_markdown(report).encode())
        save_figure(ablation_figure(report), outs.path("ablation.png"))
    return report


def ablation_markdown(report: dict) -> str:
    """The ablation as a Markdown table (one row per variant, set and scale), with the deltas the rows carry."""
    first = report["rows"][0] if report["rows"] else {}
    refs = [k.removeprefix("dpsnr_vs_") for k in first if k.startswith("dpsnr_vs_")]
    lines = ["| variant | options | set | scale | PSNR | SSIM | " + "".join(f"Δ vs {r} | " for r in refs) + "images |",
             "|---|---|---|---|---|---|" + "---|" * len(refs) + "---|"]

    def fmt(v):
        return "–" if v is None else f"{v:+.3f}"

    for r in report["rows"]:
        opts = ", ".join(f"{k}={v}" for k, v in r["options"].items()) or "–"
        deltas = "".join(f"{fmt(r[f'dpsnr_vs_{ref}'])} | " for ref in refs)
        lines.append(f"| {r['variant']} | {opts} | {r['set']} | ×{r['scale']} | {r['psnr']:.3f} | "
                     f"{r['ssim']:.4f} | {deltas}{r['n_images']} |")
    return "\n".join(lines) + "\n"


def ablation_figure(report: dict):
    """Horizontal bars per variant, one panel per (set, scale): PSNR with bicubic as a dashed line (GraphAgg*),
    or, for the learned ablation, the PSNR difference to the reference variant (highlighted)."""
    from matplotlib.figure import Figure

    rows, reference = report["rows"], report.get("reference", "default")
    deltas = report.get("title") == "learned"
    cells = sorted({(r["set"], r["scale"]) for r in rows}, key=lambda c: (c[1], c[0]))
    variants = [v for v in dict.fromkeys(r["variant"] for r in rows) if v != "bicubic"]
    fig = Figure(figsize=(4.2 * max(len(cells), 1), 0.35 * len(variants) + 1.6), dpi=100, layout="constrained")
    axes = fig.subplots(1, max(len(cells), 1), squeeze=False)[0]
    for ax, cell in zip(axes, cells):
        vals = {r["variant"]: r[f"dpsnr_vs_{reference}"] if deltas else r["psnr"]
                for r in rows if (r["set"], r["scale"]) == cell}
        ys = list(range(len(variants)))[::-1]
        ax.barh(ys, [vals.get(v, float("nan")) for v in variants],
                color=["#4c72b0" if v == reference else "#8c8c8c" for v in variants])
        finite = [vals[v] for v in variants if vals.get(v) is not None]
        if "bicubic" in vals:
            ax.axvline(vals["bicubic"], color="#c44e52", linestyle="--", label=f"bicubic {vals['bicubic']:.2f}")
            finite.append(vals["bicubic"])
            ax.legend(fontsize=7, loc="lower right")
        if deltas:
            ax.axvline(0.0, color="black", lw=0.8)
        elif finite:
            ax.set_xlim(min(finite) - 1.0, max(finite) + 0.5)
        ax.set_yticks(ys)
        ax.set_yticklabels(variants, fontsize=8)
        ax.set_xlabel(f"PSNR-Y − {reference} (dB)" if deltas else "PSNR-Y (dB)")
        ax.set_title(f"{'learned' if deltas else 'GraphAgg*'} on {cell[0]} ×{cell[1]}", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    return fig
