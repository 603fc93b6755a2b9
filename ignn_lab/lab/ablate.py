"""Ablations, scored with the evaluation protocol: GraphAgg* one switch at a time, and the learned IGNN.

* ``graphagg_ablation`` evaluates GraphAgg* once per variant (and bicubic as the floor) through
  :func:`ignn_lab.engine.evaluate.evaluate`, and writes ``ablation.json``, ``ablation.md`` and ``ablation.png``
  into ``out`` (each variant's own ``results.json`` in ``out/<variant>/``). ``ignn-lab ablate graphagg`` calls it.
* ``learned_ablation`` trains each variant of the learned model (a train config plus overrides) with the same
  budget, data and seed, or takes a checkpoint already trained that way, scores its ``best.pt`` and writes the
  same three files, with every variant compared with the first (the reference).
* ``ablation_results`` merges both into the ``results.json`` of ``04_ablate.ipynb``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Mapping

from ignn_lab.data.io import atomic_write_bytes
from ignn_lab.viz import save_figure

__all__ = ["VARIANTS", "DEFAULT_VARIANTS", "DEFAULT_LEARNED", "graphagg_ablation", "learned_ablation",
           "ablation_results", "ablation_figure", "ablation_markdown"]

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
    sets, scales, out = list(sets), [int(s) for s in scales], Path(out)
    runs = ([("bicubic", "bicubic", {})] if bicubic else []) + [(v, "graphagg-star", o) for v, o in spec.items()]
    rows = []
    for variant, model, opts in tqdm(runs, desc="ablation", unit="variant", disable=not progress):
        res = evaluate(model, sets, scales, out=out / variant, data_root=data_root, limit=limit,
                       progress=False, **opts)
        for cell in res["summary"]:
            rows.append({"variant": variant, "options": {k: v for k, v in opts.items()}, "set": cell["set"],
                         "scale": cell["scale"], "psnr": cell["psnr"], "ssim": cell["ssim"],
                         "n_images": cell["n_images"], "seconds": res["provenance"]["seconds"]})
    for r in rows:
        for ref in ("default", "bicubic"):
            base = next((b for b in rows if b["variant"] == ref and (b["set"], b["scale"]) == (r["set"], r["scale"])),
                        None)
            r[f"dpsnr_vs_{ref}"] = None if base is None else r["psnr"] - base["psnr"]
    report = {"rows": rows, "sets": sets, "scales": scales, "limit": limit}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "ablation.json", json.dumps(report, indent=1).encode())
    atomic_write_bytes(out / "ablation.md", ablation_markdown(report).encode())
    save_figure(ablation_figure(report), out / "ablation.png")
    return report


def _add_deltas(rows: list[dict], refs: Iterable[str]) -> list[dict]:
    """Give each row ``dpsnr_vs_<ref>``: its PSNR minus the ``ref`` variant's on the same set and scale (None
    where that variant was not run)."""
    for r in rows:
        for ref in refs:
            base = next((b for b in rows if b["variant"] == ref and (b["set"], b["scale"]) == (r["set"], r["scale"])),
                        None)
            r[f"dpsnr_vs_{ref}"] = None if base is None else r["psnr"] - base["psnr"]
    return rows


def _write_report(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "ablation.json", json.dumps(report, indent=1).encode())
    atomic_write_bytes(out / "ablation.md", ablation_markdown(report).encode())
    save_figure(ablation_figure(report), out / "ablation.png")


def _resolve_learned(variants: Iterable[str] | Mapping[str, Mapping]) -> dict[str, dict]:
    if isinstance(variants, str):
        variants = [variants]
    if isinstance(variants, Mapping):
        spec = {}
        for label, v in variants.items():
            if not isinstance(v, Mapping) or "config" not in v or set(v) - {"config", "overrides"}:
                raise ValueError(f"learned variant {label!r}: expected {{'config': NAME, 'overrides': {{...}}}}, "
                                 f"got {v!r}")
            spec[str(label)] = {"config": v["config"], "overrides": dict(v.get("overrides") or {})}
    else:
        spec = {str(name): {"config": str(name), "overrides": {}} for name in variants}
    if not spec:
        raise ValueError("learned_ablation needs at least one variant (train config names, or a dict "
                         "label -> {'config', 'overrides'})")
    return spec


#: Config fields that do not change what a run computes (a checkpoint trained with other values still counts).
_BOOKKEEPING = ("description", "val_every", "log_every", "save_every", "tensorboard", "data_root")


def _check_trained_as(checkpoint: Path, cfg, label: str) -> None:
    """Refuse a checkpoint whose training config differs from the variant's in a field that matters."""
    from ignn_lab.models.checkpoint import read_checkpoint

    prov = read_checkpoint(checkpoint).get("provenance", {})
    trained = prov.get("train_config")
    if not isinstance(trained, dict):
        raise ValueError(f"variant {label!r}: {checkpoint} records no training config (train_config in its "
                         "provenance); give the best.pt of an ignn-lab train run")
    want = cfg.to_dict()
    diff = sorted(k for k in set(want) | set(trained) if k not in _BOOKKEEPING and trained.get(k) != want.get(k))
    if diff:
        shown = ", ".join(f"{k}: trained {trained.get(k)!r}, expected {want.get(k)!r}" for k in diff)
        raise ValueError(f"variant {label!r}: {checkpoint} was trained with a different config ({shown})")


#: The learned variants when none are named: the lite baseline and the same without AdaPN.
DEFAULT_LEARNED = ("lite-x2", "lite-x2-no-adapn")


def learned_ablation(variants: Iterable[str] | Mapping[str, Mapping] | None = None, *, out: str | os.PathLike,
                     budget: Mapping | None = None, checkpoints: Mapping[str, str] | None = None,
                     sets: Iterable[str] = ("Set5",), limit: int | None = None, device: str = "cpu",
                     resume: bool | str = "auto", data_root: str | os.PathLike | None = None,
                     progress: bool = True) -> dict:
    """Train every variant with the same budget, data and seed, score each ``best.pt``; compare with the first.

    Args:
        variants: train config names (``["lite-x2", "lite-x2-no-adapn"]``), or a dict
            ``label -> {"config": NAME|FILE, "overrides": {...}}``; the first is the reference (default:
            :data:`DEFAULT_LEARNED`).
        out: folder for ``ablation.json``, ``ablation.md``, ``ablation.png``; variant ``L`` trains in ``out/L``.
        budget: config overrides applied to every variant after its own (``{"steps": 2000}``): the shared
            budget.
        checkpoints: ``label -> best.pt`` of variants trained elsewhere (``ignn-lab train``): scored instead of
            trained, after checking that their recorded training config is the variant's.
        sets, limit, device, data_root, progress: as :func:`ignn_lab.engine.evaluate.evaluate`; each variant is
            scored at its config's scale.
        resume: how a variant folder that already holds a run is treated (:data:`ignn_lab.lab.training.RESUME_MODES`).

    Returns:
        ``{"rows": [{"variant", "model", "config", "options", "seed", "set", "scale", "psnr", "ssim",
        "n_images", "steps", "dpsnr_vs_<reference>"}], "reference", "sets", "limit", "budget", "title"}``.
    """
    from tqdm.auto import tqdm

    from ignn_lab.lab.training import evaluate_checkpoint, run_config, train_and_evaluate

    spec, out, sets = _resolve_learned(DEFAULT_LEARNED if variants is None else variants), Path(out), list(sets)
    budget, checkpoints = dict(budget or {}), {str(k): v for k, v in (checkpoints or {}).items()}
    unknown = sorted(set(checkpoints) - set(spec))
    if unknown:
        raise ValueError(f"checkpoints given for unknown variants {unknown}; variants: {', '.join(spec)}")
    rows = []
    for label, v in tqdm(spec.items(), desc="learned ablation", unit="variant", disable=not progress):
        cfg = run_config(run_config(v["config"], v["overrides"]), budget, data_root=data_root)
        if label in checkpoints:
            ckpt = Path(checkpoints[label])
            if not ckpt.is_file():
                raise FileNotFoundError(f"variant {label!r}: no checkpoint {ckpt}")
            _check_trained_as(ckpt, cfg, label)
            res = evaluate_checkpoint(ckpt, out / label, label=label, sets=sets, limit=limit, device=device,
                                      data_root=data_root, progress=progress, extra={"config": cfg.to_dict()})
        else:
            res = train_and_evaluate(cfg, out / label, resume=resume, device=device, sets=sets, limit=limit,
                                     label=label, progress=progress)
            if res["train"]["status"] != "finished":
                raise RuntimeError(f"variant {label!r} stopped at step {res['train']['step']}/{cfg.steps} "
                                   f"({res['train']['status']}); run again to continue it")
        for cell in res["summary"]:
            rows.append({"variant": label, "model": cfg.model, "config": str(v["config"]), "options": v["overrides"],
                         "seed": cfg.seed, "set": cell["set"], "scale": cell["scale"], "psnr": cell["psnr"],
                         "ssim": cell["ssim"], "n_images": cell["n_images"], "steps": cfg.steps})
    reference = next(iter(spec))
    report = {"rows": _add_deltas(rows, (reference,)), "reference": reference, "sets": sets, "limit": limit,
              "budget": budget, "title": "learned"}
    _write_report(report, out)
    return report


def ablation_results(out: str | os.PathLike, learned: dict | None = None, graphagg: dict | None = None,
                     **parameters) -> dict:
    """The ``results.json`` of ``04_ablate``: both reports, and one summary cell per variant, set and scale
    (``model`` the network or ``graphagg-star``/``bicubic``, ``variant`` the label)."""
    from ignn_lab.lab.results import lab_provenance, write_lab_results

    summary = []
    for report in (learned, graphagg):
        for r in (report or {}).get("rows", []):
            model = r.get("model") or ("bicubic" if r["variant"] == "bicubic" else "graphagg-star")
            summary.append({"model": model, "variant": r["variant"], "set": r["set"], "scale": r["scale"],
                            "psnr": r["psnr"], "ssim": r["ssim"], "n_images": r["n_images"],
                            **({"seed": r["seed"]} if r.get("seed") is not None else {})})
    results = {"kind": "ablate", "learned": learned, "graphagg": graphagg, "summary": summary,
               "provenance": lab_provenance(parameters=parameters)}
    write_lab_results(out, results)
    return results


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
