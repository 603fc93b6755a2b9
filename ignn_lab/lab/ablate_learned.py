"""Ablations of the learned model: each variant trained with the same budget, data and seed, then scored.

``learned_ablation`` trains every variant (a train config plus overrides; the ``lite-x2-*`` configs switch one
thing of ``lite-x2``), or takes a checkpoint already trained that way, scores its ``best.pt`` with the
evaluation protocol, compares every variant with the first (the reference) and writes ``ablation.json``,
``ablation.md`` and ``ablation.png`` (drawn by :mod:`ignn_lab.lab.ablate`). ``ablation_results`` writes the
``results.json`` of ``04_ablate.ipynb``, this section and the GraphAgg* one together.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Mapping

from ignn_lab.data.io import atomic_write_bytes
from ignn_lab.lab.ablate import ablation_figure, ablation_markdown
from ignn_lab.viz import save_figure

__all__ = ["DEFAULT_LEARNED", "learned_ablation", "ablation_results"]


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
