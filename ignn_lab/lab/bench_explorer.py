"""``ignn-lab bench explorer``: how fast the match explorer answers.

Targets (256×256 LR, 2 cores): a click updates every panel in under 0.3 s; the graph of a new setting builds
in under 2 s (``pixel``) and 5 s (``vgg-random``). Measured on ``skimage/astronaut`` at ×2 (512×512 HR →
256×256 LR):

- **build**: per repetition a fresh :class:`~ignn_lab.lab.explorer.Explorer` (the image stage and the default
  pixel graph), then the ``vgg-random`` and ``pixel`` graphs of k = 4 as new settings (``update``; nothing
  cached), each timed;
- **clicks**: random LR pixels (seeded): :meth:`Explorer.select` alone and, when anywidget is installed, the
  widget's click handler (the selection and every picture it sends to the browser: what a click costs in the
  kernel; the browser's drawing is not included); median, p95 and max; and the same clicks on one torch
  thread (on a busy machine the parallel small operations of a click wait for a core; one thread shows the
  work itself);
- **model**: the same with a model: the shipped ``ignn-lite-x2`` when it exists, else an untrained
  ``ignn-lite`` (the time does not depend on the weights): its forward (the model stage) and clicks with the
  model panel.

Writes the JSON, a Markdown table (``.md``) and a chart (``.png``) beside it.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from ignn_lab.data.io import atomic_write_bytes
from ignn_lab.lab._machine import machine_info
from ignn_lab.viz import save_figure

__all__ = ["run", "markdown", "TARGETS"]

TARGETS = {"click_s": 0.3, "pixel_graph_s": 2.0, "vgg_random_graph_s": 5.0}
IMAGE = "skimage/astronaut"


def _stats(seconds: list[float]) -> dict:
    a = np.asarray(seconds)
    return {"n": int(a.size), "median_s": float(np.median(a)), "p95_s": float(np.percentile(a, 95)),
            "max_s": float(a.max()), "samples_s": [round(float(v), 5) for v in a]}


def _clicks(ex, panel, points) -> dict:
    select, widget = [], []
    for row, col in points:
        t = time.perf_counter()
        ex.select(row, col)
        select.append(time.perf_counter() - t)
        if panel is not None:
            t = time.perf_counter()
            panel.click("lr", row, col)
            widget.append(time.perf_counter() - t)
    return {"select": _stats(select), "widget": _stats(widget) if widget else None}


def _panel(ex):
    from ignn_lab._optional import available

    if not available("anywidget"):
        return None
    from ignn_lab.viz.widgets import ExplorerPanel

    return ExplorerPanel(ex)


def _model() -> tuple[object, str]:
    from ignn_lab.models import build
    from ignn_lab.models.pretrained import pretrained_path

    if pretrained_path("ignn-lite-x2") is not None:
        return "ignn-lite-x2", "shipped ignn-lite-x2"
    return build("ignn-lite", 2), ("untrained ignn-lite (same architecture; the time does not depend on the "
                                    "weights)")


def run(json_path: str | os.PathLike, *, quick: bool = False, clicks: int = 100, repeats: int = 3,
        seed: int = 0, model: bool = True) -> dict:
    """Time the explorer's graph builds and clicks; write JSON, ``.md`` and ``.png`` (same stem).

    Args:
        json_path: the output JSON.
        quick: 10 clicks, one repetition.
        clicks: random clicks per mode. repeats: graph builds per embedding.
        seed: of the click positions.
        model: also time the model stage and clicks with a model.

    Returns:
        The report (also written): ``build`` (image, pixel and vgg-random graph seconds per repetition, and
        their medians), ``clicks`` and ``model`` (median / p95 / max), ``targets``, ``meets``, ``machine``.
    """
    import torch

    from ignn_lab.lab.explorer import Explorer

    json_path = Path(json_path)
    if quick:
        clicks, repeats = 10, 1
    load0, t0 = os.getloadavg(), time.perf_counter()
    build = {"image_s": [], "pixel_graph_s": [], "vgg_random_graph_s": []}
    ex = None
    for _ in range(repeats):
        ex = Explorer(IMAGE, scale=2)
        build["image_s"].append(ex.timings["image"])
        for emb, key in (("vgg-random", "vgg_random_graph_s"), ("pixel", "pixel_graph_s")):
            rep = ex.update(embedding=emb, k=4)  # a setting not built before
            if rep["cached"]:
                raise RuntimeError("the benchmark expected a fresh graph build")
            build[key].append(rep["seconds"]["graph"])
    ex.update(k=5)
    H, W = ex.lr.shape[-2:]
    rng = np.random.default_rng(seed)
    points = [(int(r), int(c)) for r, c in zip(rng.integers(0, H, clicks), rng.integers(0, W, clicks))]
    report: dict = {
        "image": IMAGE, "scale": 2, "lr_size": [int(H), int(W)], "settings": ex.settings,
        "build": {**build, **{k.replace("_s", "_median_s"): statistics.median(v) for k, v in build.items()}},
        "clicks": _clicks(ex, _panel(ex), points),
    }
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same clicks on one thread: how much of a click is waiting for a busy core
    try:
        report["clicks_one_thread"] = _clicks(ex, _panel(ex), points)
    finally:
        torch.set_num_threads(threads)
    if model:
        net, what = _model()
        forwards = []
        for _ in range(repeats):
            ex.update(model=None)
            forwards.append(ex.update(model=net)["seconds"]["model"])
        report["model"] = {"model": what, "forward_s": forwards,
                           "forward_median_s": statistics.median(forwards),
                           **{f"clicks_{k}": v for k, v in _clicks(ex, _panel(ex), points).items()}}
    report["settings"] = {k: (v if isinstance(v, (int, float, str, type(None))) else type(v).__name__)
                          for k, v in ex.settings.items()}
    click = report["clicks"]["widget"] or report["clicks"]["select"]
    report["targets"] = TARGETS
    b = report["build"]
    report["meets"] = {"click_median": click["median_s"] < TARGETS["click_s"],
                       "click_p95": click["p95_s"] < TARGETS["click_s"],
                       "pixel_graph": b["pixel_graph_median_s"] < TARGETS["pixel_graph_s"],
                       "vgg_random_graph": b["vgg_random_graph_median_s"] < TARGETS["vgg_random_graph_s"]}
    report["machine"] = {**machine_info(), "loadavg_before": load0, "loadavg_after": os.getloadavg(),
                         "torch_threads": torch.get_num_threads()}
    report["seconds"] = time.perf_counter() - t0
    json_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(json_path, (json.dumps(report, indent=1) + "\n").encode())
    atomic_write_bytes(json_path.with_suffix(".md"), markdown(report).encode())
    _chart(report, json_path.with_suffix(".png"))
    return report


def _rows(report: dict) -> list[tuple[str, float, float | None, float]]:
    """(what, median, p95 or None, target) per measured quantity."""
    b, c = report["build"], report["clicks"]
    rows = [("graph, new setting: pixel", b["pixel_graph_median_s"], None, TARGETS["pixel_graph_s"]),
            ("graph, new setting: vgg-random", b["vgg_random_graph_median_s"], None,
             TARGETS["vgg_random_graph_s"]),
            ("click: select", c["select"]["median_s"], c["select"]["p95_s"], TARGETS["click_s"])]
    if c["widget"]:
        rows.append(("click: select + pictures (widget)", c["widget"]["median_s"], c["widget"]["p95_s"],
                     TARGETS["click_s"]))
    c1 = report["clicks_one_thread"]
    c1 = c1["widget"] or c1["select"]
    rows.append(("the same clicks, one torch thread", c1["median_s"], c1["p95_s"], TARGETS["click_s"]))
    m = report.get("model")
    if m:
        rows.append(("model stage: one forward", m["forward_median_s"], None, float("nan")))
        cm = m["clicks_widget"] or m["clicks_select"]
        rows.append(("click with the model panel", cm["median_s"], cm["p95_s"], TARGETS["click_s"]))
    return rows


def markdown(report: dict) -> str:
    """The report as a Markdown table."""
    mach = report["machine"]
    h, w = report["lr_size"]
    lines = [f"Explorer on {report['image']} ×{report['scale']} (LR {h}×{w}), "
             f"{mach['torch_threads']} torch threads, {mach['cpu_count']} CPUs ({mach['cpu']}), load average "
             f"{mach['loadavg_before'][0]:.1f} before / {mach['loadavg_after'][0]:.1f} after.", "",
             "| what | median | p95 | target |", "|---|---|---|---|"]
    for what, med, p95, target in _rows(report):
        lines.append(f"| {what} | {med:.3f} s | {'' if p95 is None else f'{p95:.3f} s'} | "
                     f"{'' if target != target else f'< {target:g} s'} |")
    if report.get("model"):
        lines += ["", f"Model: {report['model']['model']}."]
    return "\n".join(lines) + "\n"


def _chart(report: dict, png: Path) -> None:
    from matplotlib.figure import Figure

    rows = _rows(report)
    fig = Figure(figsize=(8, 0.5 * len(rows) + 1.4), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(rows))[::-1]
    ax.barh(y, [r[1] for r in rows], color="#4c72b0", label="median")
    for yi, (_, med, p95, target) in zip(y, rows):
        if p95 is not None:
            ax.plot([med, p95], [yi, yi], color="black", linewidth=1)
            ax.plot([p95], [yi], marker="|", color="black", markersize=10)
        if target == target:
            ax.plot([target, target], [yi - 0.4, yi + 0.4], color="#c44e52", linewidth=2)
    ax.set_yticks(y, [r[0] for r in rows], fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("seconds (bar: median, whisker: p95, red: target)")
    mach = report["machine"]
    ax.set_title(f"explorer, {report['image']} ×2, LR {report['lr_size'][0]}², {mach['torch_threads']} "
                 f"threads, load {mach['loadavg_before'][0]:.1f}", fontsize=9)
    save_figure(fig, png)
