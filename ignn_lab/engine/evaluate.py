"""Benchmark evaluation with the protocol of ``shared/datasets/README.md``.

For every HR image and scale: mod-crop, LR = MATLAB bicubic (uint8), SR = predictor(LR), PSNR/SSIM on the
unrounded BT.601 Y channel with ``scale`` pixels shaved. Results go to ``results.json`` and ``table.md``.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from ignn_lab.data.convert import to_chw, to_hwc, to_uint8
from ignn_lab.data.datasets import (ImageRecord, canonical_set, list_images, load_image, resolve_data_root,
                                    verify_named_set)
from ignn_lab.data.degrade import modcrop
from ignn_lab.data.imresize import imresize
from ignn_lab.data.io import OutputError, atomic_write_bytes, json_bytes, probe_image, write_image
from ignn_lab.data.outputs import OutputSet, output_set
from ignn_lab.engine.options import PredictOptions
from ignn_lab.engine.predictors import Predictor, bicubic_predictor, get_predictor, graphagg_star_predictor
from ignn_lab.engine.provenance import environment, git_commit
from ignn_lab.engine.published import published_method, read_published
from ignn_lab.metrics import psnr_ssim

__all__ = ["Predictor", "EvalRow", "EVAL_OUTPUTS", "check_limit", "check_scales", "get_predictor",
           "bicubic_predictor", "graphagg_star_predictor", "to_uint8", "evaluate", "summarise", "format_table",
           "write_results"]

#: What :func:`evaluate` writes into ``out``, replaced together (``images`` with ``save_images``).
EVAL_OUTPUTS = ("results.json", "table.md", "images")


@dataclass
class EvalRow:
    model: str
    set: str
    scale: int
    image: str
    psnr: float
    ssim: float


@dataclass
class _Set:
    """A set as evaluated: its label, images, where they are, and whether it is the published benchmark."""

    label: str
    records: list[ImageRecord]
    source: str
    named: bool
    verified: bool
    complete: bool


@contextmanager
def _torch_threads(n: int):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _eval_image(record: ImageRecord, model_name: str, predictors: dict[int, Predictor], scales: list[int],
                images_dir: Path | None) -> list[EvalRow]:
    try:
        hr_full = to_chw(load_image(record))
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
                write_image(images_dir / record.set / f"x{s}" / f"{record.name}.png", to_hwc(sr))
    except (ValueError, TypeError) as exc:  # say which image: the model's own message does not know it
        if str(record.path) in str(exc):
            raise
        raise (ValueError if isinstance(exc, ValueError) else TypeError)(f"{record.path}: {exc}") from None
    return rows


def check_scales(scales: Any) -> list[int]:
    """The scales as a list: ints ≥ 2, each once (ValueError naming the first that is not)."""
    if isinstance(scales, int):
        scales = [scales]
    out = list(scales)
    if not out:
        raise ValueError("evaluate needs at least one scale")
    for s in out:
        if isinstance(s, bool) or not isinstance(s, int) or s < 2:
            raise ValueError(f"scale {s!r}: scales are ints ≥ 2 (super-resolution factors)")
    dup = sorted({s for s in out if out.count(s) > 1})
    if dup:
        raise ValueError(f"scale {dup[0]} is listed twice; give each scale once")
    return out


def check_limit(limit: Any) -> int | None:
    """``limit`` if it is None or an int ≥ 1 (ValueError otherwise)."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit={limit!r}: it must be a positive number of images per set, or None (all)")
    return limit


def _plan_sets(sets: Any, data_root, limit: int | None) -> list[_Set]:
    """Resolve every set before any work: its images, and (for a named benchmark set) its manifest check."""
    names = [sets] if isinstance(sets, (str, os.PathLike)) else list(sets)
    if not names:
        raise ValueError("evaluate needs at least one set")
    plan: list[_Set] = []
    for name in names:
        records = list_images(name, data_root)
        canonical = canonical_set(name)
        named = canonical is not None
        used = records[:limit] if limit else records
        verified = named and verify_named_set(canonical, data_root, used)
        label = used[0].set
        source = str(used[0].path.parent)
        for other in plan:
            if other.label == label:
                same = "is listed twice" if other.source == source else f"and {other.source} share this name"
                raise ValueError(f"set {label!r} {same}; give each set once")
        plan.append(_Set(label, used, source, named, verified, len(used) == len(records)))
    return plan


def _check_sizes(plan: list[_Set], predictors: dict[int, Predictor], model_name: str) -> None:
    """Every image's header read and checked (format, bit depth, size for each scale) before any work."""
    for st in plan:
        for rec in st.records:
            info = probe_image(rec.path)
            for s, pred in predictors.items():
                need = max(getattr(pred, "min_lr_side", 1), 1)
                if min(info.width // s, info.height // s) < need:
                    raise ValueError(
                        f"{rec.path}: {info.width}×{info.height} pixels is too small for {model_name} at ×{s} "
                        f"(LR {info.width // s}×{info.height // s}); it needs an LR of at least {need}×{need}, "
                        f"so images of at least {need * s}×{need * s}")


def summarise(rows: Iterable[EvalRow], published: dict | None = None, comparable: Iterable[str] | None = None
              ) -> list[dict]:
    """Per (model, set, scale): mean PSNR/SSIM, count, and the published value with the delta where known.

    Args:
        published: ``read_published()`` (default: read it).
        comparable: the set labels that may stand beside published values (default: all); :func:`evaluate`
            passes the named benchmark sets it verified against ``MANIFEST.tsv`` and scored in full.
    """
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
        ok = comparable is None or set_ in comparable
        pub = published.get((method, scale, set_)) if method and ok else None
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


def write_results(out: str | os.PathLike | OutputSet, results: dict) -> Path:
    """Write ``results.json`` (strict JSON) and ``table.md`` into ``out``, as one set (see ``data.outputs``)."""
    with output_set(out, ("results.json", "table.md")) as outs:
        atomic_write_bytes(outs.path("results.json"), json_bytes(results))
        atomic_write_bytes(outs.path("table.md"), format_table(results["summary"]).encode())
        return outs.final("results.json")


def evaluate(
    model: str | os.PathLike | torch.nn.Module = "bicubic",
    sets: Iterable[str] | str = ("Set5", "Set14", "B100", "Urban100"),
    scales: Iterable[int] = (2, 3, 4),
    *,
    data_root: str | os.PathLike | None = None,
    out: str | os.PathLike | OutputSet | None = None,
    save_images: bool = False,
    progress: bool = True,
    workers: int | None = None,
    limit: int | None = None,
    options: PredictOptions | None = None,
    **predictor_opts,
) -> dict:
    """Evaluate a model on benchmark sets (or image folders / the embedded ``skimage`` set).

    Everything that can be checked is checked before the first image is scored: the options against the model,
    the sets (a named benchmark set must match the data root's ``MANIFEST.tsv``), every image's header and size,
    and the output folder. Outputs are written as one set: a failed run leaves ``out`` as it was.

    Args:
        model: ``bicubic``, ``graphagg-star``, a registry name, a shipped checkpoint name, a checkpoint path or
            an nn.Module (see :mod:`ignn_lab.engine.predictors`).
        sets: set names (``Set5`` … ``Urban100``, ``skimage``) or folders; each image is treated as HR. A known
            name always means that set of the data root (give ``./Set5`` for a folder of that name).
        scales: SR factors, ints ≥ 2, each once.
        data_root: where the named sets live (default: ``IGNN_LAB_DATA`` or ``../shared/datasets``).
        out: folder for ``results.json``, ``table.md`` (and ``images/`` with ``save_images``), or an open
            :class:`~ignn_lab.data.outputs.OutputSet` that a caller commits.
        workers: threads for thread-safe predictors (default: the CPU count).
        limit: evaluate only the first ``limit`` (≥ 1) images of each set; such cells get no published values.
        options: a :class:`PredictOptions`; or give the options as keywords (``**predictor_opts``).

    Returns:
        ``{"rows": [...], "summary": [...], "provenance": {...}}``. Published values stand beside a cell only
        for a named benchmark set verified against ``MANIFEST.tsv`` and scored in full.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    scales, limit = check_scales(scales), check_limit(limit)
    if save_images and out is None:
        raise ValueError("save_images needs an output folder (out)")
    if options is None:
        options = PredictOptions.from_kwargs(**predictor_opts)
    elif predictor_opts:
        raise ValueError(f"give the options as a PredictOptions or as keywords, not both ({sorted(predictor_opts)})")
    predictors = {s: get_predictor(model, s, options) for s in scales}
    name = predictors[scales[0]].name
    plan = _plan_sets(sets, data_root, limit)
    _check_sizes(plan, predictors, name)
    if out is not None and not isinstance(out, OutputSet):
        here = Path(out).expanduser().resolve()
        if any(here == Path(st.source).resolve() for st in plan):
            raise OutputError(f"{out} is the folder of images being scored; the outputs would join the set, so "
                              "choose another output folder")
    parallel = all(p.parallel_safe for p in predictors.values())
    n_workers = (workers or os.cpu_count() or 1) if parallel else 1
    inputs = [r.path for st in plan for r in st.records]
    rows: list[EvalRow] = []
    with output_set(out, EVAL_OUTPUTS, inputs=inputs) as outs:
        images_dir = outs.path("images") if (save_images and outs is not None) else None
        with _torch_threads(1 if n_workers > 1 else torch.get_num_threads()), ThreadPoolExecutor(n_workers) as pool:
            for st in plan:
                jobs = pool.map(lambda r: _eval_image(r, name, predictors, scales, images_dir), st.records)
                for image_rows in tqdm(jobs, total=len(st.records), desc=f"{name} {st.label}", unit="img",
                                       disable=not progress):
                    rows.extend(image_rows)
        order = [st.label for st in plan]
        rows.sort(key=lambda r: (order.index(r.set), r.scale, r.image))
        results = {"rows": [asdict(r) for r in rows],
                   "summary": summarise(rows, comparable=[st.label for st in plan if st.verified and st.complete]),
                   "provenance": _provenance(predictors, plan, scales, limit, data_root, n_workers,
                                             time.perf_counter() - t0)}
        if outs is not None:
            write_results(outs, results)
    return results


def _provenance(predictors: dict[int, Predictor], plan: list[_Set], scales: list[int], limit: int | None,
                data_root, n_workers: int, seconds: float) -> dict:
    first = predictors[scales[0]]
    config = {str(s): p.model.config.to_dict() for s, p in predictors.items()
              if hasattr(getattr(p, "model", None), "config") and hasattr(p.model.config, "to_dict")}
    named = any(st.named and st.label != "skimage" for st in plan)
    return {
        "git_commit": git_commit(), "model": first.name, "model_source": first.source,
        "model_options": first.settings, **({"model_config": config} if config else {}),
        "sets": [st.label for st in plan], "scales": scales, "limit": limit,
        "set_sources": [{"set": st.label, "folder": st.source, "images": len(st.records), "named": st.named,
                         "verified": st.verified, "complete": st.complete} for st in plan],
        "data_root": str(resolve_data_root(data_root).resolve()) if named else None,
        **environment(), "workers": n_workers, "seconds": round(seconds, 3),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "protocol": "modcrop; MATLAB bicubic uint8 LR (clamped borders); Y BT.601 unrounded; "
                    "shave=scale; Gaussian SSIM 11x11 sigma 1.5 valid",
    }
