"""Tasks shared by the CLI and the notebooks: evaluate, train, demo, shipping a checkpoint (reproducing tables
is :mod:`ignn_lab.lab.reproduce`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from ignn_lab.data.io import atomic_write_bytes, json_bytes
from ignn_lab.data.outputs import OutputSet, output_set
from ignn_lab.viz import save_figure

__all__ = ["demo", "demo_models", "evaluate_task", "save_figure", "ship_checkpoint", "train_task"]


def evaluate_task(model: str = "bicubic", sets: Iterable[str] = ("Set5", "Set14", "B100", "Urban100"),
                  scales: Iterable[int] = (2, 3, 4), *, out: str | os.PathLike | OutputSet, data_root=None,
                  save_images: bool = False, progress: bool = True, limit: int | None = None, **opts) -> dict:
    """Evaluate and write ``results.json``, ``table.md``, ``psnr.png`` (and ``images/``) into ``out``, replaced
    together: a run that fails leaves the previous run's files as they were."""
    from ignn_lab.engine.evaluate import EVAL_OUTPUTS, evaluate
    from ignn_lab.viz.compare import summary_figure

    with output_set(out, (*EVAL_OUTPUTS, "psnr.png"), what="output folder (--out)") as outs:
        res = evaluate(model, sets, scales, data_root=data_root, out=outs, save_images=save_images,
                       progress=progress, limit=limit, **opts)
        save_figure(summary_figure(res), outs.path("psnr.png"))
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


def ship_checkpoint(run: str | os.PathLike, name: str, *, dest: str | os.PathLike | None = None,
                    max_mb: float = 20.0, sessions: list[dict] | None = None) -> Path:
    """Copy a run's ``best.pt`` into the shipped checkpoints as ``NAME.pt``: weights, config and provenance only
    (the training command, its validation PSNR, commit, versions), checked to load and to stay under ``max_mb``.

    Args:
        run: a run folder of ``ignn-lab train`` (its ``best.pt`` is shipped).
        name: the shipped name (``ignn-lite-x2``); it resolves in evaluate, upscale, explore and ``models``.
        dest: the folder (default: ``ignn_lab/weights``).
        sessions: the run's sessions (command, first step, steps, commit each) where its checkpoint has no
            record of them (runs begun before the trainer kept one); a recorded list is never replaced.
    """
    from ignn_lab.models import load, save
    from ignn_lab.models.pretrained import weights_dir

    src = Path(run) / "best.pt"
    model = load(src)
    prov = {**model.provenance, "shipped_as": name, "shipped_from": str(Path(run).resolve())}
    if sessions is not None and "sessions" not in prov:
        prov["sessions"] = [dict(x) for x in sessions]
    path = save(model, Path(dest or weights_dir()) / f"{name}.pt", provenance=prov)
    size = path.stat().st_size / 2**20
    if size > max_mb:
        path.unlink()
        raise ValueError(f"{src} makes a {size:.1f} MB checkpoint; shipped checkpoints stay under {max_mb} MB")
    load(path)
    return path


def demo_models(scale: int) -> list[str]:
    """The models the demo shows at ``scale``: bicubic, then the shipped checkpoints of that scale (EDSR first)."""
    from ignn_lab.models.checkpoint import read_checkpoint
    from ignn_lab.models.pretrained import list_pretrained

    shipped = [name for name, path in list_pretrained().items()
               if read_checkpoint(path).get("config", {}).get("scale") == scale]
    return ["bicubic", *sorted(shipped, key=lambda n: (not n.startswith("edsr"), n))]


def demo(out: str | os.PathLike = "runs/demo", *, scales: Iterable[int] = (2, 4), explore: bool = True,
         progress: bool = True) -> dict:
    """The main job on the embedded ``skimage`` set: super-resolution with the shipped checkpoints beside bicubic.

    For each scale, bicubic and every shipped checkpoint of that scale (``ignn-lite-x2``, ``edsr-lite-x2`` …)
    upscale the embedded images with the evaluation protocol: one table (PSNR-Y / SSIM-Y per model and scale),
    side-by-side crops HR | bicubic | networks with each one's PSNR, and the cross-scale match figure of the
    most recurrent patch of each image.
    """
    from ignn_lab.data.convert import to_chw
    from ignn_lab.data.datasets import list_images, load_image
    from ignn_lab.data.degrade import modcrop
    from ignn_lab.data.io import read_image
    from ignn_lab.engine.evaluate import format_table
    from ignn_lab.metrics import psnr_ssim
    from ignn_lab.viz.compare import crop_comparison_figure

    scales = [int(s) for s in scales]
    records = list_images("skimage")
    plan = [(s, m) for s in scales for m in demo_models(s)]
    with OutputSet(out, ("sr", "crops", "explore", "table.md", "demo.json"), what="output folder (--out)") as outs:
        summary_rows, results = [], {}
        for s, m in plan:
            run = outs.path("sr") / f"{m}_x{s}"
            res = evaluate_task(m, ["skimage"], [s], out=run, save_images=True, progress=progress)
            results[f"{m} x{s}"] = res
            summary_rows += res["summary"]
        atomic_write_bytes(outs.path("table.md"), format_table(summary_rows).encode())
        crops = []
        for rec in records:
            hr_full = load_image(rec)
            for s in scales:
                hr = modcrop(hr_full, s)
                panels, scores = {}, {}
                for m in (m for sc, m in plan if sc == s):
                    sr = read_image(outs.path("sr") / f"{m}_x{s}" / "images" / "skimage" / f"x{s}" / f"{rec.name}.png")
                    label = f"{m} ×{s}"
                    panels[label] = sr
                    scores[label] = psnr_ssim(to_chw(sr), to_chw(hr), crop_border=s)
                fig = crop_comparison_figure(hr, panels, scores=scores, title=f"{rec.name} (HR)")
                save_figure(fig, outs.path("crops") / f"{rec.name}_x{s}.png")
                crops.append(str(outs.final("crops").resolve() / f"{rec.name}_x{s}.png"))
        figures = []
        if explore:
            from ignn_lab.lab.explore import explore as explore_image

            for rec in records:
                explore_image(f"skimage/{rec.name}", scale=2, out=outs.path("explore") / f"{rec.name}_x2.png")
                figures.append(str(outs.final("explore").resolve() / f"{rec.name}_x2.png"))
        summary = {"out": str(outs.folder.resolve()), "table": str(outs.final("table.md").resolve()),
                   "models": [f"{m} ×{s}" for s, m in plan], "crops": crops, "explore": figures,
                   "results_json": {k: str(outs.final("sr").resolve() / k.replace(" ", "_") / "results.json")
                                    for k in results}}
        atomic_write_bytes(outs.path("demo.json"), json_bytes(summary))
    return {"results": results, **summary}
