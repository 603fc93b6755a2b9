"""Headless figures for evaluation results: side-by-side crops and per-image PSNR charts."""

from __future__ import annotations

import numpy as np

__all__ = ["pick_crop", "crop_comparison_figure", "summary_figure"]


def _figure(figsize):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, dpi=100, layout="constrained")


def pick_crop(hr: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the ``size``² crop with the most gradient energy (where SR methods differ most)."""
    g = hr.astype(np.float64)
    if g.ndim == 3:
        g = g.mean(2)
    h, w = g.shape
    size = min(size, h, w)
    energy = np.zeros_like(g)
    energy[:, 1:] += np.abs(np.diff(g, axis=1))
    energy[1:, :] += np.abs(np.diff(g, axis=0))
    ii = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = ii[size:, size:] - ii[:-size, size:] - ii[size:, :-size] + ii[:-size, :-size]
    r, c = np.unravel_index(np.argmax(sums), sums.shape)
    return int(r), int(c)


def crop_comparison_figure(hr: np.ndarray, outputs: dict[str, np.ndarray], *, size: int = 96,
                           scores: dict[str, tuple[float, float]] | None = None, title: str = ""):
    """The whole HR image with a box, then the same crop of HR and each output, side by side.

    Args:
        hr: H×W×3 or H×W uint8 ground truth.
        outputs: name → uint8 image of the same shape (e.g. ``{"bicubic": sr}``).
        size: crop side in HR pixels (placed where the gradient energy is largest).
        scores: name → (PSNR, SSIM) shown under the crops.
    """
    from matplotlib.patches import Rectangle

    r, c = pick_crop(hr, size)
    size = min(size, *hr.shape[:2])
    cmap = "gray" if hr.ndim == 2 else None
    n = 2 + len(outputs)
    fig = _figure((2.6 * n, 3.0))
    axes = fig.subplots(1, n)
    axes[0].imshow(hr, cmap=cmap, vmin=0, vmax=255)
    axes[0].add_patch(Rectangle((c - 0.5, r - 0.5), size, size, fill=False, edgecolor="red", linewidth=1.5))
    axes[0].set_title(title or "HR", fontsize=9)
    panels = [("HR (crop)", hr)] + list(outputs.items())
    for ax, (name, img) in zip(axes[1:], panels):
        ax.imshow(img[r: r + size, c: c + size], cmap=cmap, vmin=0, vmax=255, interpolation="nearest")
        label = name
        if scores and name in scores:
            p, s = scores[name]
            label += f"\n{p:.2f} dB / {s:.4f}"
        ax.set_title(label, fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def summary_figure(results: dict):
    """Per-image PSNR (Y) for each set and scale of a ``results.json``, with the set mean marked."""
    rows = results["rows"]
    keys = sorted({(r["set"], r["scale"]) for r in rows}, key=lambda k: (k[1], k[0]))
    fig = _figure((max(4.0, 1.1 * len(keys) + 1.5), 3.4))
    ax = fig.subplots()
    rng = np.random.default_rng(0)
    for i, key in enumerate(keys):
        vals = np.array([r["psnr"] for r in rows if (r["set"], r["scale"]) == key], dtype=float)
        vals = vals[np.isfinite(vals)]
        ax.scatter(i + rng.uniform(-0.18, 0.18, len(vals)), vals, s=6, alpha=0.5)
        if len(vals):
            ax.hlines(vals.mean(), i - 0.3, i + 0.3, color="black", linewidth=2)
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([f"{s}\n×{sc}" for s, sc in keys], fontsize=8)
    ax.set_ylabel("PSNR-Y (dB)")
    models = sorted({r["model"] for r in rows})
    ax.set_title(f"{', '.join(models)}: per-image PSNR (bar = set mean)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return fig
