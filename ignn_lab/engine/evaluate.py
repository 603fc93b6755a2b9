"""Benchmark evaluation with the protocol of ``shared/datasets/README.md``.

For every HR image and scale: mod-crop, LR = MATLAB bicubic (uint8), SR = predictor(LR), PSNR/SSIM on the
unrounded BT.601 Y channel with ``scale`` pixels shaved. Results go to ``results.json`` and ``table.md``.
"""

from __future__ import annotations

import json
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Protocol

import numpy as np
import torch
from torch import Tensor

import ignn_lab
from ignn_lab.data.datasets import list_images, load_image, resolve_data_root
from ignn_lab.data.degrade import modcrop
from ignn_lab.data.imresize import imresize
from ignn_lab.data.io import atomic_write_bytes, write_image
from ignn_lab.engine.provenance import git_commit
from ignn_lab.engine.published import published_method, read_published
from ignn_lab.metrics import psnr_ssim

__all__ = ["Predictor", "EvalRow", "get_predictor", "bicubic_predictor", "graphagg_star_predictor",
           "to_uint8", "evaluate", "summarise", "format_table", "write_results"]


class Predictor(Protocol):
    """uint8 C×H×W LR (C ∈ {1, 3}) → uint8 C×sH×sW SR."""

    name: str
    parallel_safe: bool

    def __call__(self, lr: Tensor) -> Tensor: ...


@dataclass
class EvalRow:
    model: str
    set: str
    scale: int
    image: str
    psnr: float
    ssim: float


class _FnPredictor:
    def __init__(self, name: str, fn: Callable[[Tensor], Tensor], parallel_safe: bool):
        self.name, self._fn, self.parallel_safe = name, fn, parallel_safe

    def __call__(self, lr: Tensor) -> Tensor:
        return self._fn(lr)


def to_uint8(x: Tensor) -> Tensor:
    """Float in [0, 1] → uint8 on [0, 255]: clamp, round half up (as the release's scoring does)."""
    return torch.floor(x * 255.0 + 0.5).clamp_(0, 255).to(torch.uint8)


def bicubic_predictor(scale: int) -> Predictor:
    """MATLAB bicubic upscaling of the uint8 LR (the protocol's baseline)."""
    return _FnPredictor("bicubic", lambda lr: imresize(lr, float(scale)), parallel_safe=True)


def graphagg_star_predictor(scale: int, **opts) -> Predictor:
    """GraphAgg*, the non-learned cross-scale aggregation (``ignn_lab.graph.aggregate``)."""
    from ignn_lab.graph.aggregate import graphagg_star

    def run(lr: Tensor) -> Tensor:
        x = lr.to(torch.float32)[None] / 255.0
        grey = x.shape[1] == 1
        if grey:
            x = x.expand(-1, 3, -1, -1)
        with torch.inference_mode():
            y = graphagg_star(x, scale, **opts)
        if grey:
            y = y.mean(1, keepdim=True)
        return to_uint8(y[0])

    return _FnPredictor("graphagg-star", run, parallel_safe=False)


def get_predictor(model: str | os.PathLike | torch.nn.Module, scale: int, **opts) -> Predictor:
    """Predictor for ``bicubic``, ``graphagg-star``, or (via ``ignn_lab.engine.inference``) a network or checkpoint."""
    if isinstance(model, str) and model.lower() == "bicubic":
        if opts:
            raise ValueError(f"the bicubic model takes no options, got {sorted(opts)}")
        return bicubic_predictor(scale)
    if isinstance(model, str) and model.lower() in ("graphagg-star", "graphagg*"):
        return graphagg_star_predictor(scale, **opts)
    from ignn_lab.engine.inference import model_predictor

    return model_predictor(model, scale, **opts)


@contextmanager
def _torch_threads(n: int):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _to_chw(img: np.ndarray) -> Tensor:
    t = torch.from_numpy(np.ascontiguousarray(img))
    return t[None] if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


def _from_chw(t: Tensor) -> np.ndarray:
    return t[0].numpy() if t.shape[0] == 1 else t.permute(1, 2, 0).numpy()


def _eval_image(record, model_name: str, predictors: dict[int, Predictor], scales: list[int],
                images_dir: Path | None) -> list[EvalRow]:
    hr_full = _to_chw(load_image(record))
    rows = []
    for s in scales:
        hr = modcrop(hr_full, s).contiguous()
        lr = imresize(hr, 1.0 / s)
        sr = predictors[s](lr)
        if sr.shape != hr.shape:
            raise RuntimeError(f"{model_name} returned {tuple(sr.shape)} for {record.set}/{record.name} ×{s}; "
                               f"expected {tuple(hr.shape)}")
        p, q = psnr_ssim(sr, hr, crop_border=s)
        rows.append(EvalRow(model_name, record.set, s, record.name, p, q))
        if images_dir is not None:
            write_image(images_dir / record.set / f"x{s}" / f"{record.name}.png", _from_chw(sr.cpu()))
    return rows


def summarise(rows: Iterable[EvalRow], published: dict | None = None) -> list[dict]:
    """Per (model, set, scale): mean PSNR/SSIM, count, and the published value with the delta where known."""
    groups: dict[tuple, list[EvalRow]] = {}
    for r in rows:
        groups.setdefault((r.model, r.set, r.scale), []).append(r)
    published = published if published is not None else read_published()
    out = []
    for (model, set_, scale), rs in groups.items():
        cell = {"model": model, "set": set_, "scale": scale,
                "psnr": float(np.mean([r.psnr for r in rs])), "ssim": float(np.mean([r.ssim for r in rs])),
                "n_images": len(rs)}
        method = published_method(model)
        pub = published.get((method, scale, set_)) if method else None
        if pub is not None:
            cell.update(published_psnr=pub.psnr, published_ssim=pub.ssim, delta_psnr=cell["psnr"] - pub.psnr,
                        delta_ssim=None if pub.ssim is None else cell["ssim"] - pub.ssim, published_method=pub.method)
        out.append(cell)
    return out


def format_table(summary: list[dict]) -> str:
    """Markdown table of a summary, each cell beside the published value and the delta."""
    lines = ["| Model | Set | Scale | PSNR | published | ΔPSNR | SSIM | published | ΔSSIM | images |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for c in summary:
        pub = "published_psnr" in c
        lines.append(
            f"| {c['model']} | {c['set']} | ×{c['scale']} | {c['psnr']:.3f} | "
            + (f"{c['published_psnr']:.2f} | {c['delta_psnr']:+.3f} | " if pub else "– | – | ")
            + f"{c['ssim']:.4f} | "
            + (f"{c['published_ssim']:.4f} | {c['delta_ssim']:+.4f} | " if c.get("published_ssim") is not None
               else "– | – | ")
            + f"{c['n_images']} |"
        )
    return "\n".join(lines) + "\n"


def write_results(out: str | os.PathLike, results: dict) -> Path:
    """Write ``results.json`` and ``table.md`` into ``out`` (atomically)."""
    d = Path(out)
    atomic_write_bytes(d / "results.json", json.dumps(results, indent=1).encode())
    atomic_write_bytes(d / "table.md", format_table(results["summary"]).encode())
    return d / "results.json"


def evaluate(
    model: str | os.PathLike | torch.nn.Module = "bicubic",
    sets: Iterable[str] = ("Set5", "Set14", "B100", "Urban100"),
    scales: Iterable[int] = (2, 3, 4),
    *,
    data_root: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    save_images: bool = False,
    progress: bool = True,
    workers: int | None = None,
    limit: int | None = None,
    **predictor_opts,
) -> dict:
    """Evaluate a model on benchmark sets (or image folders / the embedded ``skimage`` set).

    Args:
        model: ``bicubic``, ``graphagg-star``, a registry name, a checkpoint path or an nn.Module.
        sets: set names (``Set5`` … ``Urban100``, ``skimage``) or folders; each image is treated as HR.
        scales: SR factors.
        data_root: where the named sets live (default: ``IGNN_LAB_DATA`` or ``../shared/datasets``).
        out: folder for ``results.json``, ``table.md`` (and ``images/`` with ``save_images``).
        workers: threads for thread-safe predictors (default: the CPU count).
        limit: evaluate only the first ``limit`` images of each set.
        **predictor_opts: passed to :func:`get_predictor`.

    Returns:
        ``{"rows": [...], "summary": [...], "provenance": {...}}``.
    """
    from tqdm.auto import tqdm

    sets, scales = list(sets), [int(s) for s in scales]
    if not sets or not scales:
        raise ValueError("evaluate needs at least one set and one scale")
    t0 = time.perf_counter()
    name = model if isinstance(model, str) else getattr(model, "name", type(model).__name__)
    name = str(name)
    predictors = {s: get_predictor(model, s, **predictor_opts) for s in scales}
    name = predictors[scales[0]].name if not isinstance(model, str) or name.lower() != "bicubic" else "bicubic"
    parallel = all(p.parallel_safe for p in predictors.values())
    n_workers = (workers or os.cpu_count() or 1) if parallel else 1
    images_dir = Path(out) / "images" if (save_images and out is not None) else None
    root = None
    rows: list[EvalRow] = []
    with _torch_threads(1 if n_workers > 1 else torch.get_num_threads()), ThreadPoolExecutor(n_workers) as pool:
        for set_name in sets:
            if root is None and set_name.lower() != "skimage" and not Path(set_name).is_dir():
                root = resolve_data_root(data_root)
            records = list_images(set_name, root)[: limit or None]
            jobs = pool.map(lambda r: _eval_image(r, name, predictors, scales, images_dir), records)
            for image_rows in tqdm(jobs, total=len(records), desc=f"{name} {set_name}", unit="img",
                                   disable=not progress):
                rows.extend(image_rows)
    elapsed = time.perf_counter() - t0
    rows.sort(key=lambda r: (sets.index(r.set) if r.set in sets else 0, r.scale, r.image))
    results = {
        "rows": [asdict(r) for r in rows],
        "summary": summarise(rows),
        "provenance": {
            "ignn_lab": ignn_lab.__version__, "git_commit": git_commit(), "model": name,
            "model_options": {k: str(v) for k, v in predictor_opts.items()}, "sets": sets, "scales": scales,
            "data_root": str(root) if root else None, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "workers": n_workers, "seconds": round(elapsed, 3),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "protocol": "modcrop; MATLAB bicubic uint8 LR (clamped borders); Y BT.601 unrounded; "
                        "shave=scale; Gaussian SSIM 11x11 sigma 1.5 valid",
        },
    }
    if out is not None:
        write_results(out, results)
    return results
