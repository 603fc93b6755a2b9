"""Train a model and score its best checkpoint: the step behind ``02_train.ipynb`` and the learned ablations.

:func:`train_and_evaluate` runs :func:`ignn_lab.engine.train.fit` (starting, continuing or skipping a finished
run, see :func:`fit_or_resume`), evaluates ``best.pt`` with the protocol on the chosen sets, and writes
``results.json`` into the run folder (:mod:`ignn_lab.lab.results`). :func:`evaluate_checkpoint` does the scoring
half alone, for a checkpoint trained elsewhere. :class:`LiveCurves` redraws the loss / validation curves in a
Jupyter output while a run trains.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Any, Iterable

from ignn_lab.data.io import sha256_file
from ignn_lab.lab.results import lab_provenance, write_lab_results

__all__ = ["RESUME_MODES", "LiveCurves", "compare_curves", "curves_png", "evaluate_checkpoint", "fit_or_resume",
           "run_config", "train_and_evaluate"]

#: ``resume`` values: False or None (start; refuse a folder that holds a run), True (continue ``last.pt``),
#: ``"auto"`` (continue when the folder's run has the same config up to
#: :data:`~ignn_lab.engine.train.RESUMABLE_CHANGES`, otherwise start afresh, removing the old run's files; what
#: ``reproduce`` and re-queued cluster jobs use).
RESUME_MODES = (None, False, True, "auto")
#: What the trainer writes into a run folder (removed before a fresh start with ``resume="auto"``).
_RUN_FILES = ("last.pt", "best.pt", "log.jsonl", "curves.png", "config.json")
_RUN_DIRS = ("tensorboard", "eval", "eval-x8")


def run_config(config: Any, overrides: dict | list[str] | None = None, *, steps: int | None = None,
               data_root: str | os.PathLike | None = None):
    """The :class:`~ignn_lab.engine.train_config.TrainConfig` of a run: a shipped name, file, dict or config,
    with ``overrides`` (a dict, or ``key=value`` strings as ``--set`` takes them), then ``steps`` and
    ``data_root`` when given."""
    from ignn_lab.engine.train_config import load_config, parse_overrides

    over = parse_overrides(overrides) if isinstance(overrides, (list, tuple)) else dict(overrides or {})
    if steps is not None:
        over["steps"] = steps
    if data_root is not None:
        over["data_root"] = str(data_root)
    return load_config(config, over)


def _changed_fields(saved: dict, cfg) -> list[str]:
    now = cfg.to_dict()
    return sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))


def _clear_run(out: Path) -> None:
    for name in _RUN_FILES:
        (out / name).unlink(missing_ok=True)
    for name in _RUN_DIRS:
        shutil.rmtree(out / name, ignore_errors=True)


def fit_or_resume(cfg, out: str | os.PathLike, *, resume: bool | str = False, device: str = "cpu",
                  max_minutes: float | None = None, progress: bool = True, command: str | None = None):
    """:func:`~ignn_lab.engine.train.fit` a run, continuing it where ``resume`` says (see :data:`RESUME_MODES`).

    A run whose ``last.pt`` already reached ``cfg.steps`` is not trained again: its result is read back.

    Returns:
        The :class:`~ignn_lab.engine.train.TrainResult`.
    """
    from ignn_lab.engine.train import RESUMABLE_CHANGES, TrainResult, fit, read_training_state

    if resume not in RESUME_MODES:
        raise ValueError(f"resume must be one of {RESUME_MODES}, got {resume!r}")
    out, resume = Path(out), bool(resume) if resume is None else resume
    last = out / "last.pt"
    state = read_training_state(last) if last.is_file() and resume else None
    changed = [k for k in _changed_fields(state["config"], cfg) if k not in RESUMABLE_CHANGES] if state else []
    if resume == "auto":
        if state is None or state["step"] > cfg.steps or changed:
            _clear_run(out)
            state = None
        resume = state is not None
    elif changed:
        raise ValueError(f"resume: the run in {out} was trained with different {changed}; only "
                         f"{list(RESUMABLE_CHANGES)} may change when a run is resumed")
    if state is not None and state["step"] >= cfg.steps and (out / "best.pt").is_file():
        history = list(state.get("validations", []))
        return TrainResult(out, "finished", int(state["step"]), cfg.steps, state.get("best_psnr"),
                           history[-1]["val_psnr"] if history else None, float(state.get("wall_seconds", 0.0)),
                           history)
    return fit(cfg, out, resume=bool(resume), device=device, max_minutes=max_minutes, progress=progress,
               command=command)


def evaluate_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike, *, label: str,
                        sets: Iterable[str] = ("Set5",), scales: Iterable[int] | None = None,
                        limit: int | None = None, self_ensemble: bool = False, device: str = "cpu",
                        data_root: str | os.PathLike | None = None, progress: bool = True,
                        extra: dict | None = None) -> dict:
    """Score a trained checkpoint with the protocol and write ``out/results.json`` (plus ``out/eval/`` and,
    with ``self_ensemble``, ``out/eval-x8/``: the evaluations' own ``results.json``).

    Args:
        checkpoint: a kit checkpoint (``best.pt`` of a run).
        label: the model name in the summary cells (``label+"+"`` for the self-ensemble).
        scales: default: the checkpoint's own scale.
        extra: more top-level entries of ``results.json`` (the training record, the config).

    Returns:
        The ``results.json`` content: ``{"kind", "label", "checkpoint", "summary", "evaluations",
        "provenance", **extra}``; each summary cell carries ``seed`` when ``extra["config"]`` has one.
    """
    from ignn_lab.engine.evaluate import evaluate
    from ignn_lab.models.checkpoint import read_checkpoint

    ckpt = Path(checkpoint)
    if scales is None:
        scales = [int(read_checkpoint(ckpt)["config"]["scale"])]
    sets, scales, out = list(sets), [int(s) for s in scales], Path(out)
    seed = (extra or {}).get("config", {}).get("seed")
    summary, evaluations = [], {}
    for plus, sub in ((False, "eval"), (True, "eval-x8")):
        if plus and not self_ensemble:
            continue
        opts = {"self_ensemble": True} if plus else {}
        res = evaluate(str(ckpt), sets, scales, out=out / sub, data_root=data_root, limit=limit,
                       progress=progress, device=device, **opts)
        evaluations[sub] = str((out / sub / "results.json").resolve())
        for cell in res["summary"]:
            summary.append({"model": label + ("+" if plus else ""), "set": cell["set"], "scale": cell["scale"],
                            "psnr": cell["psnr"], "ssim": cell["ssim"], "n_images": cell["n_images"],
                            **({"seed": seed} if seed is not None else {})})
    results = {"kind": "train", "label": label, **(extra or {}),
               "checkpoint": {"path": str(ckpt.resolve()), "sha256": sha256_file(ckpt)},
               "summary": summary, "evaluations": evaluations,
               "provenance": lab_provenance(sets=sets, scales=scales, limit=limit)}
    write_lab_results(out, results)
    return results


def train_and_evaluate(config: Any, out: str | os.PathLike, *, overrides: dict | list[str] | None = None,
                       steps: int | None = None, resume: bool | str = False, max_minutes: float | None = None,
                       device: str = "cpu", sets: Iterable[str] = ("Set5",), scales: Iterable[int] | None = None,
                       limit: int | None = None, self_ensemble: bool = False, label: str | None = None,
                       data_root: str | os.PathLike | None = None, live: bool = False,
                       progress: bool = True) -> dict:
    """Train (or continue) a run in ``out``, then evaluate its ``best.pt``; writes ``out/results.json``.

    Args:
        config: a shipped config name, a JSON file, a dict or a TrainConfig.
        overrides: config fields to change (dict, or ``key=value`` strings; ``model_overrides.k=3``).
        steps: the run's length (None: the config's).
        resume: see :data:`RESUME_MODES`.
        max_minutes: stop after this much wall time, saving ``last.pt``; run again with ``resume`` to go on.
        sets, scales, limit: what ``best.pt`` is scored on (scales default to the config's scale).
        self_ensemble: also score the ×8 self-ensemble (``label+"+"``).
        label: model name in the summary (default: the config's model).
        live: redraw the curves in the Jupyter output while training (:class:`LiveCurves`).

    Returns:
        The ``results.json`` content; without a finished run (time limit, interrupt) it has an empty
        ``summary`` and ``train.status`` says why.
    """
    from contextlib import nullcontext

    cfg = run_config(config, overrides, steps=steps, data_root=data_root)
    out = Path(out)
    label = label or cfg.model
    title = f"{cfg.model} ×{cfg.scale}"
    with LiveCurves(out, title=title) if live else nullcontext():
        res = fit_or_resume(cfg, out, resume=resume, device=device, max_minutes=max_minutes, progress=progress)
    train = {"status": res.status, "step": res.step, "steps": res.steps, "best_psnr": res.best_psnr,
             "last_psnr": res.last_psnr, "seconds": round(res.seconds, 1), "run": str(out.resolve())}
    extra = {"config": cfg.to_dict(), "train": train}
    if res.status != "finished":
        results = {"kind": "train", "label": label, **extra, "summary": [], "evaluations": {},
                   "provenance": lab_provenance(sets=list(sets), scales=None, limit=limit)}
        write_lab_results(out, results)
        return results
    return evaluate_checkpoint(res.best_path, out, label=label, sets=sets, scales=scales or [cfg.scale],
                               limit=limit, self_ensemble=self_ensemble, device=device, data_root=data_root,
                               progress=progress, extra=extra)


def curves_png(out: str | os.PathLike, *, title: str, dpi: int = 80) -> bytes | None:
    """The loss / validation-PSNR figure of a run folder as PNG bytes (None before the first log line)."""
    import io

    import matplotlib.pyplot as plt

    from ignn_lab.viz.curves import read_log, training_curves_figure

    log = Path(out) / "log.jsonl"
    records = read_log(log) if log.is_file() else []
    if not records:
        return None
    fig = training_curves_figure({title: records}, title=title)
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return buf.getvalue()


def compare_curves(runs: Iterable[str | os.PathLike], out: str | os.PathLike, *,
                   labels: Iterable[str] | None = None, title: str | None = None,
                   offsets: Iterable[int] | None = None) -> dict:
    """One loss / validation-PSNR figure of several run folders (``ignn-lab curves``), written atomically.

    Args:
        runs: run folders of ``ignn-lab train`` (each with a ``log.jsonl``).
        out: the figure (``.png``, ``.pdf`` or ``.svg``).
        labels: one per run (default: the folder names).
        offsets: steps added to each run's own (default 0): a run started from another's weights
            (``init_from``) drawn after the steps that made them.

    Returns:
        ``{"figure", "runs": {label: {"folder", "last_step", "best_val_psnr", "best_step"}}}``.

    Raises:
        ValueError: a folder without a log, a number of labels or offsets other than the number of runs, or a
            negative offset.
    """
    import matplotlib.pyplot as plt

    from ignn_lab.viz import save_figure
    from ignn_lab.viz.curves import read_log, training_curves_figure

    folders = [Path(r) for r in runs]
    names = list(labels) if labels is not None else [f.name for f in folders]
    if len(names) != len(folders):
        raise ValueError(f"{len(names)} labels for {len(folders)} runs: give one label per run folder")
    shifts = [int(x) for x in offsets] if offsets is not None else [0] * len(folders)
    if len(shifts) != len(folders) or min(shifts, default=0) < 0:
        raise ValueError(f"offsets {shifts} for {len(folders)} runs: give one step count >= 0 per run folder")
    records, summary = {}, {}
    for name, folder, shift in zip(names, folders, shifts):
        log = folder / "log.jsonl"
        recs = [{**r, "step": r["step"] + shift} for r in read_log(log)] if log.is_file() else []
        if not recs:
            raise ValueError(f"{folder}: no training log (log.jsonl); expected a run folder of ignn-lab train")
        records[name] = recs
        val = [r for r in recs if "val_psnr" in r]
        top = max(val, key=lambda r: r["val_psnr"]) if val else None
        summary[name] = {"folder": str(folder), "last_step": max(r["step"] for r in recs),
                         "best_val_psnr": top["val_psnr"] if top else None, "best_step": top["step"] if top else None}
    fig = training_curves_figure(records, title=title)
    try:
        path = save_figure(fig, out)
    finally:
        plt.close(fig)
    return {"figure": str(path), "runs": summary}


class LiveCurves:
    """While the ``with`` block trains into ``out``, redraw its curves in one Jupyter output every ``every``
    seconds (a daemon thread reads ``log.jsonl``; the training itself stays in the main thread, so interrupting
    the kernel stops it cleanly with ``last.pt`` saved).

    Outside a Jupyter kernel nothing is shown; ``updates`` counts the redraws.
    """

    def __init__(self, out: str | os.PathLike, *, title: str, every: float = 5.0):
        self.out, self.title, self.every = Path(out), title, float(every)
        self.updates = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handle = None
        self._seen = -1

    def refresh(self) -> None:
        """Redraw now if ``log.jsonl`` grew since the last redraw."""
        log = self.out / "log.jsonl"
        size = log.stat().st_size if log.is_file() else -1
        if size == self._seen:
            return
        png = curves_png(self.out, title=self.title)
        if png is None:
            return
        self._seen = size
        self.updates += 1
        if self._handle is not None:
            from IPython.display import Image

            self._handle.update(Image(data=png))

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.refresh()

    def __enter__(self) -> LiveCurves:
        from ignn_lab._optional import available

        if available("IPython"):
            from IPython import get_ipython
            from IPython.display import display

            if get_ipython() is not None:
                self._handle = display(f"training {self.title}: curves appear after the first log line",
                                       display_id=True)
        self._thread = threading.Thread(target=self._loop, name="ignn-lab-live-curves", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.refresh()
