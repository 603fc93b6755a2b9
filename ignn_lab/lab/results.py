"""The ``results.json`` every lab notebook writes into its ``out`` folder, and the check ``reproduce`` applies.

A valid ``results.json`` is a JSON object with

* ``summary``: a list of cells ``{"model": str, "set": str, "scale": 2|3|4, "psnr": float, "ssim": float,
  "n_images": int >= 1}``, optionally ``variant`` (ablations) and ``seed`` (trained models);
* ``provenance``: an object with at least ``ignn_lab`` (the version) and ``git_commit``.

``03_evaluate`` writes :func:`ignn_lab.engine.evaluate.evaluate`'s results (which have this shape), ``02_train``
writes :func:`ignn_lab.lab.training.train_and_evaluate`'s and ``04_ablate`` writes
:func:`ignn_lab.lab.ablate_learned.ablation_results`'s. A training run stopped before its last step has an empty
summary and a ``train.status`` other than ``finished``.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

__all__ = ["check_results", "lab_provenance", "read_results", "write_lab_results"]

_CELL_TYPES = {"model": str, "set": str, "scale": int, "psnr": (int, float), "ssim": (int, float),
               "n_images": int}


def lab_provenance(**extra) -> dict:
    """Version, commit, machine and time of a lab result, plus ``extra`` entries."""
    from ignn_lab.engine.provenance import environment, git_commit

    return {**environment(), "git_commit": git_commit(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}


def check_results(obj: object, where: str = "results.json") -> dict:
    """Return ``obj`` when it is a valid ``results.json`` (see the module docstring); else raise ValueError
    listing every problem."""
    problems = []
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    summary = obj.get("summary")
    if not isinstance(summary, list):
        problems.append("'summary' must be a list of cells")
        summary = []
    for i, cell in enumerate(summary):
        if not isinstance(cell, dict):
            problems.append(f"summary[{i}] is not an object")
            continue
        for key, kind in _CELL_TYPES.items():
            value = cell.get(key)
            if isinstance(value, bool) or not isinstance(value, kind):
                problems.append(f"summary[{i}].{key} = {value!r} is not {getattr(kind, '__name__', 'a number')}")
        if isinstance(cell.get("psnr"), (int, float)) and not math.isfinite(cell["psnr"]):
            problems.append(f"summary[{i}].psnr is {cell['psnr']}")
        if cell.get("scale") not in (2, 3, 4):
            problems.append(f"summary[{i}].scale = {cell.get('scale')!r}; accepted: 2, 3, 4")
        if isinstance(cell.get("n_images"), int) and cell["n_images"] < 1:
            problems.append(f"summary[{i}].n_images = {cell['n_images']}")
    prov = obj.get("provenance")
    if not isinstance(prov, dict) or not {"ignn_lab", "git_commit"} <= set(prov):
        problems.append("'provenance' must be an object with 'ignn_lab' and 'git_commit'")
    train = obj.get("train")
    if not summary and not (isinstance(train, dict) and train.get("status") not in (None, "finished")):
        problems.append("'summary' is empty (only a training run stopped early may have no cells)")
    if problems:
        raise ValueError(f"{where} is not a valid lab result: " + "; ".join(problems))
    return obj


def read_results(out: str | os.PathLike) -> dict:
    """The checked ``results.json`` of a notebook or task folder ``out``."""
    path = Path(out) / "results.json"
    try:
        obj = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc})") from None
    return check_results(obj, str(path))


def write_lab_results(out: str | os.PathLike, results: dict) -> Path:
    """Check ``results`` and write ``out/results.json`` atomically."""
    from ignn_lab.data.io import atomic_write_bytes

    path = Path(out) / "results.json"
    check_results(results, str(path))
    return atomic_write_bytes(path, json.dumps(results, indent=1).encode())
