"""Training curves: the loss and the validation PSNR of one or more runs, from their ``log.jsonl`` records."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

__all__ = ["read_log", "training_curves_figure"]


def read_log(path: str | os.PathLike) -> list[dict]:
    """The records of a run's ``log.jsonl`` (a run folder or the file); a torn last line is skipped."""
    p = Path(path)
    if p.is_dir():
        p = p / "log.jsonl"
    out = []
    for line in p.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _smooth(values: np.ndarray, n: int) -> np.ndarray:
    if len(values) < 3 or n < 2:
        return values
    n = min(n, len(values))
    kernel = np.ones(n) / n
    padded = np.concatenate([np.full(n - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")


def training_curves_figure(runs: dict[str, list[dict]], *, title: str | None = None):
    """Loss (log scale, smoothed) and validation PSNR-Y against the step, one line per run.

    Args:
        runs: label → the run's log records (``{"step", "loss"}`` and ``{"step", "val_psnr"}`` lines).

    Returns:
        A matplotlib Figure with two panels.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for label, records in runs.items():
        train = [r for r in records if "loss" in r]
        val = [r for r in records if "val_psnr" in r]
        if train:
            steps = np.array([r["step"] for r in train])
            loss = np.array([r["loss"] for r in train], dtype=np.float64)
            ax_loss.plot(steps, _smooth(loss, 5), label=label, lw=1.2)
        if val:
            ax_val.plot([r["step"] for r in val], [r["val_psnr"] for r in val], marker="o", ms=3, label=label)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("L1 loss (training, smoothed)")
    ax_val.set_xlabel("step")
    ax_val.set_ylabel("validation PSNR-Y (dB)")
    for ax in (ax_loss, ax_val):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig
