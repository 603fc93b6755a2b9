"""Tasks shared by the CLI and the notebooks: evaluate, reproduce, demo."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from ignn_lab.data.io import atomic_write_bytes
from ignn_lab.viz import save_figure

__all__ = ["evaluate_task", "reproduce", "demo", "save_figure", "train_task"]


def evaluate_task(model: str = "bicubic", sets: Iterable[str] = ("Set5", "Set14", "B100", "Urban100"),
                  scales: Iterable[int] = (2, 3, 4), *, out: str | os.PathLike, data_root=None,
                  save_images: bool = False, progress: bool = True, limit: int | None = None, **opts) -> dict:
    """Evaluate and write ``results.json``, ``table.md`` and ``psnr.png`` into ``out``."""
    from ignn_lab.engine.evaluate import evaluate
    from ignn_lab.viz.compare import summary_figure

    res = evaluate(model, sets, scales, data_root=data_root, out=out, save_images=save_images, progress=progress,
                   limit=limit, **opts)
    save_figure(summary_figure(res), Path(out) / "psnr.png")
    return res


def train_task(config: str | os.PathLike | None, out: str | os.PathLike, *, overrides: list[str] | dict | None = None,
               resume: bool = False, device: str = "cpu", max_minutes: float | None = None,
               progress: bool = True):
    """Train from a shipped config name or a JSON file (``--set`` strings or a dict of overrides).

    With ``resume`` and no ``config``, the run's saved config is used, with ``overrides`` applied.
    """
    from ignn_lab.engine.train import fit, read_training_state
    from ignn_lab.engine.train_config import load_config, parse_overrides

    over = parse_overrides(overrides) if isinstance(overrides, (list, tuple)) else dict(overrides or {})
    if config is None:
        if not resume:
            raise ValueError("train needs --config NAME|FILE (see ignn-lab configs), or --resume with a run folder")
        cfg = load_config(read_training_state(Path(out) / "last.pt")["config"], over) if over else None
    else:
        cfg = load_config(config, over)
    return fit(cfg, out, resume=resume, device=device, max_minutes=max_minutes, progress=progress)


def reproduce(what: str = "bicubic", *, out: str | os.PathLike = "runs/reproduce", sets=None, scales=None,
              data_root=None, progress: bool = True) -> dict:
    """Reproduce a table headlessly by running ``notebooks/03_evaluate.ipynb`` with papermill."""
    from ignn_lab.lab.notebooks import read_results, run_notebook

    if what != "bicubic":
        raise ValueError(f"reproduce knows 'bicubic' (the published bicubic table); got {what!r}")
    params = {"model": "bicubic", "out": str(Path(out).resolve())}
    if sets:
        params["sets"] = list(sets)
    if scales:
        params["scales"] = [int(s) for s in scales]
    if data_root:
        params["data_root"] = str(data_root)
    run_notebook("03_evaluate", params, out, progress=progress)
    return read_results(out)


def _to_chw(img: np.ndarray):
    import torch

    t = torch.from_numpy(np.ascontiguousarray(img))
    return t[None] if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


def _from_chw(t) -> np.ndarray:
    return t[0].numpy() if t.shape[0] == 1 else t.permute(1, 2, 0).numpy()


def demo(out: str | os.PathLike = "runs/demo", *, scales: Iterable[int] = (2, 4), explore: bool = True,
         progress: bool = True) -> dict:
    """The main job on the embedded ``skimage`` set: bicubic ×2/×4 table, side-by-side crops, match figures."""
    from ignn_lab.data.datasets import list_images, load_image
    from ignn_lab.data.degrade import modcrop
    from ignn_lab.data.imresize import imresize
    from ignn_lab.engine.evaluate import bicubic_predictor
    from ignn_lab.metrics import psnr_ssim
    from ignn_lab.viz.compare import crop_comparison_figure

    out = Path(out)
    scales = [int(s) for s in scales]
    res = evaluate_task("bicubic", ["skimage"], scales, out=out / "bicubic", progress=progress)
    crops = []
    for rec in list_images("skimage"):
        hr_full = _to_chw(load_image(rec))
        for s in scales:
            hr = modcrop(hr_full, s).contiguous()
            sr = bicubic_predictor(s)(imresize(hr, 1.0 / s))
            score = psnr_ssim(sr, hr, crop_border=s)
            fig = crop_comparison_figure(_from_chw(hr), {f"bicubic ×{s}": _from_chw(sr)},
                                         scores={f"bicubic ×{s}": score}, title=f"{rec.name} (HR)")
            crops.append(str(save_figure(fig, out / "crops" / f"{rec.name}_x{s}.png")))
    figures = []
    if explore:
        from ignn_lab.lab.explore import explore as explore_image

        for rec in list_images("skimage"):
            info = explore_image(f"skimage/{rec.name}", scale=2, out=out / "explore" / f"{rec.name}_x2.png")
            figures.append(str(info.get("figure", out / "explore" / f"{rec.name}_x2.png")))
    summary = {"out": str(out.resolve()), "table": str((out / "bicubic" / "table.md").resolve()),
               "results": str((out / "bicubic" / "results.json").resolve()), "crops": crops,
               "explore": figures}
    atomic_write_bytes(out / "demo.json", json.dumps(summary, indent=1).encode())
    return {"results": res, **summary}
