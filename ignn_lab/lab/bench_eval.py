"""Benchmark of the evaluation pipeline against a straightforward numpy implementation of the same protocol.

Both run in the same process on the same images: the baseline resizes with a per-output-index loop over
MATLAB's contributions (the common Python port of ``imresize``) and filters SSIM with a 2-D 11×11 convolution;
the kit uses its vectorised polyphase ``imresize``, separable SSIM filtering and threads over images.
"""

from __future__ import annotations

import json
import math
import os
import time

import numpy as np

from ignn_lab.data.io import atomic_write_bytes
from ignn_lab.lab._machine import machine_info

__all__ = ["baseline_bicubic_psnr_ssim", "run"]


def _np_resize_dim(x: np.ndarray, axis: int, scale: float) -> np.ndarray:
    from ignn_lab.data.imresize import contributions

    n = x.shape[axis]
    m = math.ceil(n * scale - 1e-9)
    w, ind = contributions(n, m, scale, True)
    x = np.moveaxis(x, axis, 0)
    out = np.empty((m,) + x.shape[1:])
    for i in range(m):
        acc = np.zeros(x.shape[1:])
        for p in range(w.shape[1]):
            acc += w[i, p] * x[ind[i, p]]
        out[i] = np.clip(np.floor(acc + 0.5), 0, 255)
    return np.moveaxis(out, 0, axis)


def _np_imresize(img: np.ndarray, scale: float) -> np.ndarray:
    return _np_resize_dim(_np_resize_dim(img.astype(np.float64), 0, scale), 1, scale)


def _np_y(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        return img.astype(np.float64)
    img = img.astype(np.float64)
    return 16.0 + (65.481 * img[..., 0] + 128.553 * img[..., 1] + 24.966 * img[..., 2]) / 255.0


def _np_ssim(a: np.ndarray, b: np.ndarray) -> float:
    from scipy import ndimage

    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    win = np.outer(g, g) / np.outer(g, g).sum()

    def f(x):
        return ndimage.convolve(x, win, mode="constant")[5:-5, 5:-5]

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu1, mu2 = f(a), f(b)
    s1, s2, s12 = f(a * a) - mu1**2, f(b * b) - mu2**2, f(a * b) - mu1 * mu2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s1 + s2 + c2))
    return float(m.mean())


def baseline_bicubic_psnr_ssim(hr: np.ndarray, scale: int) -> tuple[float, float]:
    """The protocol written plainly in numpy (one image, one scale)."""
    h, w = hr.shape[:2]
    hr = hr[: h - h % scale, : w - w % scale]
    sr = _np_imresize(_np_imresize(hr, 1.0 / scale), float(scale))
    a, b = _np_y(sr)[scale:-scale, scale:-scale], _np_y(hr)[scale:-scale, scale:-scale]
    mse = np.mean((a - b) ** 2)
    return 10 * math.log10(255**2 / mse), _np_ssim(a, b)


def run(json_path: str | os.PathLike, *, quick: bool = False, full: bool = True) -> dict:
    """Time the kit's evaluation against the numpy baseline on a common subset; optionally the full 12 cells.

    Writes ``json_path`` with both times, their ratio, the max |ΔPSNR| between the two, and the machine load.
    """

    from ignn_lab.data.datasets import list_images, load_image
    from ignn_lab.engine.evaluate import evaluate

    subset = {"Set5": 5, "Set14": 14, "Urban100": 3} if not quick else {"Set5": 2}
    scales = (2, 3, 4) if not quick else (2,)
    load0 = os.getloadavg()
    t = time.perf_counter()
    base = {}
    for s, n in subset.items():
        for rec in list_images(s)[:n]:
            img = load_image(rec)
            for sc in scales:
                base[(s, rec.name, sc)] = baseline_bicubic_psnr_ssim(img, sc)
    t_base = time.perf_counter() - t
    t = time.perf_counter()
    ours = {}
    for s, n in subset.items():
        res = evaluate("bicubic", [s], scales, limit=n, progress=False)
        ours.update({(r["set"], r["image"], r["scale"]): (r["psnr"], r["ssim"]) for r in res["rows"]})
    t_ours = time.perf_counter() - t
    max_dpsnr = max(abs(base[k][0] - ours[k][0]) for k in base)
    max_dssim = max(abs(base[k][1] - ours[k][1]) for k in base)
    out = {
        "subset": subset, "scales": list(scales), "image_scales": len(base),
        "baseline_numpy_s": round(t_base, 3), "ignn_lab_s": round(t_ours, 3),
        "speedup": round(t_base / t_ours, 2), "max_abs_dpsnr": max_dpsnr, "max_abs_dssim": max_dssim,
    }
    if full and not quick:
        t = time.perf_counter()
        res = evaluate("bicubic", ("Set5", "Set14", "B100", "Urban100"), (2, 3, 4), progress=False)
        out["full_12_cells_s"] = round(time.perf_counter() - t, 3)
        out["full_12_cells_rows"] = len(res["rows"])
        per_image_base = t_base / len(base)
        out["baseline_full_estimate_s"] = round(per_image_base * len(res["rows"]), 1)
        out["baseline_full_estimate_note"] = ("baseline seconds per image-scale on the subset × 657 image-scales; "
                                              "Urban100 images are larger than the subset average, so this is low")
    out["machine"] = {**machine_info(), "loadavg_before": load0, "loadavg_after": os.getloadavg(),
                      "numpy": np.__version__}
    atomic_write_bytes(json_path, json.dumps(out, indent=1).encode())
    return out
