"""Model benchmark: parameters, FLOPs, CPU time and peak memory of EDSR vs IGNN (``ignn-lab bench models``).

Every configuration (model, scale, LR size) runs in its own subprocess, so its peak memory is that process's max
RSS. FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products; elementwise
work such as kNN distance differences and AdaIN is not counted). IGNN's time is split with hooks on its graph
module: the son (bicubic), graph construction (embedding + kNN + diff maps) and aggregation (the rest of ``gcn``).

``ignn-lab bench memory --json OUT`` runs paper-size IGNN ×2 on a 1024×1024 LR image with the default tiling and
reports its peak RSS (:func:`memory_check`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from ignn_lab.data.io import atomic_write_bytes
from ignn_lab.lab._machine import machine_info, proc_status_mb
from ignn_lab.viz import save_figure

__all__ = ["run", "memory_check", "measure", "measure_pair", "measure_tiled", "markdown", "main", "sample_image"]

LITE = ("edsr-lite", "ignn-lite")
PAPER = ("edsr", "ignn")
SPEED_TARGET = 1.6  # the lite models' goal: ignn-lite ≤ 1.6 × edsr-lite at 256² LR, ×2
MEMORY_TARGET_GB = 6.0


# ---------------------------------------------------------------- measurements (run inside a child process)


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def sample_image(size: int):
    """3×size×size uint8: skimage's astronaut, MATLAB-bicubic resized to the size (every benchmark's model input)."""
    import torch
    from skimage import data

    from ignn_lab.data.imresize import imresize

    img = torch.from_numpy(data.astronaut()).permute(2, 0, 1).contiguous()
    return imresize(img, size=(size, size))


class _GraphTimers:
    """Wall time of IGNN's son, graph construction and whole graph module, collected per forward."""

    def __init__(self, net) -> None:
        self.t = {"son": 0.0, "build": 0.0, "gcn": 0.0}
        self._start = 0.0
        gcn = getattr(net, "gcn", None)
        self.active = gcn is not None
        if not self.active:
            return
        gcn.register_forward_pre_hook(lambda m, a: self._begin())
        gcn.register_forward_hook(lambda m, a, o: self._end("gcn"))
        gcn.build_graph = self._wrap(gcn.build_graph, "build")  # instance attribute: this model only
        if hasattr(net, "son_of"):
            net.son_of = self._wrap(net.son_of, "son")

    def _begin(self) -> None:
        self._start = time.perf_counter()

    def _end(self, key: str) -> None:
        self.t[key] += time.perf_counter() - self._start

    def _wrap(self, fn, key):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.t[key] += time.perf_counter() - t0
        return timed

    def reset(self) -> dict:
        out, self.t = dict(self.t), {k: 0.0 for k in self.t}
        return out


def measure(model: str, scale: int, size: int, *, warmup: int = 1, repeats: int = 3, threads: int | None = None,
            flops: bool = True) -> dict:
    """Measure one configuration in this process (call it in a fresh subprocess for a clean peak RSS).

    Args:
        model: a registry name (random weights, seed 0). scale: 2, 3 or 4. size: LR side in pixels.
        warmup: untimed forwards first (≥ 1 when counting FLOPs: the first warm-up runs under the counter).
        repeats: timed forwards (the median is reported); ≥ 1.
        threads: torch intra-op threads (default: all cores).
        flops: count FLOPs with ``FlopCounterMode`` during the first warm-up forward (never during a timed one:
            the counter slows small operations, such as the son's bicubic, by two orders of magnitude).

    Returns:
        A dict: params, flops (total and per top-level module), seconds (median, all), graph timing shares,
        peak RSS (MB) of the process and its RSS after building the model, and the machine load.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ignn_lab.models import build

    if threads:
        torch.set_num_threads(threads)
    load_before = os.getloadavg()
    rss_start = proc_status_mb("VmRSS")
    torch.manual_seed(0)
    net = build(model, scale).eval()
    lr = sample_image(size)[None].float() / 255.0
    rss_model = proc_status_mb("VmRSS")
    timers = _GraphTimers(net)
    times, parts = [], []
    counter = FlopCounterMode(display=False)
    warmup = max(warmup, 1) if flops else warmup
    with torch.inference_mode():
        for i in range(warmup + max(repeats, 1)):
            timers.reset()
            with counter if (flops and i == 0) else contextlib.nullcontext():
                t0 = time.perf_counter()
                net(lr)
                dt = time.perf_counter() - t0
            if i == 0:
                peak = _max_rss_mb()
            if i >= warmup:
                times.append(dt)
                parts.append(timers.reset())
    res = {"model": model, "scale": scale, "size": size, "warmup": warmup, "repeats": len(times),
           "params": sum(p.numel() for p in net.parameters()),
           "trainable_params": sum(p.numel() for p in net.parameters() if p.requires_grad),
           "seconds": statistics.median(times), "seconds_all": times,
           "peak_rss_mb": peak, "rss_after_build_mb": rss_model, "rss_start_mb": rss_start,
           "peak_over_model_mb": peak - rss_model}
    if timers.active:
        med = {k: statistics.median(p[k] for p in parts) for k in parts[0]}
        total = res["seconds"]
        res["graph_seconds"] = {"son": med["son"], "graph_construction": med["build"],
                                "aggregation": med["gcn"] - med["build"]}
        res["graph_share"] = {"son": med["son"] / total, "graph_construction": med["build"] / total,
                              "aggregation": (med["gcn"] - med["build"]) / total,
                              "graph_total": (med["son"] + med["gcn"]) / total}
    if flops:
        res["flops"] = int(counter.get_total_flops())
        top = type(net).__name__
        res["flops_by_module"] = {k.removeprefix(top + "."): int(sum(v.values()))
                                  for k, v in counter.get_flop_counts().items()
                                  if k.startswith(top + ".") and k.count(".") == 1}
    res["loadavg_before"], res["loadavg_after"] = load_before, os.getloadavg()
    res["machine"] = machine_info()
    return res


def measure_pair(edsr: str, ignn: str, scale: int, size: int, *, rounds: int = 7,
                 threads: int | None = None) -> dict:
    """Time two models alternately in one process (A, B, A, B, …) so that load changes hit both alike.

    Returns:
        A dict with both medians, the ratio of the medians and the median of the per-round ratios (IGNN / EDSR).
    """
    import torch

    from ignn_lab.models import build

    if threads:
        torch.set_num_threads(threads)
    load_before = os.getloadavg()
    torch.manual_seed(0)
    nets = {name: build(name, scale).eval() for name in (edsr, ignn)}
    lr = sample_image(size)[None].float() / 255.0
    times: dict[str, list[float]] = {edsr: [], ignn: []}
    with torch.inference_mode():
        for net in nets.values():
            net(lr)  # warm-up
        for _ in range(rounds):
            for name, net in nets.items():
                t0 = time.perf_counter()
                net(lr)
                times[name].append(time.perf_counter() - t0)
    per_round = [b / a for a, b in zip(times[edsr], times[ignn])]
    return {"edsr": edsr, "ignn": ignn, "scale": scale, "size": size, "rounds": rounds,
            "seconds": {k: statistics.median(v) for k, v in times.items()}, "seconds_all": times,
            "time_ratio": statistics.median(times[ignn]) / statistics.median(times[edsr]),
            "time_ratio_per_round_median": statistics.median(per_round),
            "loadavg_before": load_before, "loadavg_after": os.getloadavg()}


def measure_tiled(model: str, scale: int, size: int, *, budget_gb: float | None = None, tile: int | None = None,
                  threads: int | None = None) -> dict:
    """Upscale a size×size LR image with the inference engine's tiling and report time and peak RSS.

    Returns:
        A dict: the tile side and count, the measured activation bytes per pixel, seconds, peak RSS (MB).
    """
    import torch

    from ignn_lab.engine.inference import model_predictor
    from ignn_lab.models import build

    if threads:
        torch.set_num_threads(threads)
    load_before = os.getloadavg()
    torch.manual_seed(0)
    net = build(model, scale).eval()
    lr = sample_image(size)
    rss_model = proc_status_mb("VmRSS")
    pred = model_predictor(net, scale, tile=tile, memory_budget_gb=budget_gb)
    t0 = time.perf_counter()
    sr = pred(lr)
    dt = time.perf_counter() - t0
    side = pred.tile_side(size, size)
    return {"model": model, "scale": scale, "size": size, "sr_shape": list(sr.shape), "seconds": dt,
            "tile": side, "overlap": pred.overlap, "tiles": pred.last_tiles,
            "budget_gb": pred.budget_bytes / 2**30, "bytes_per_pixel": pred.bytes_per_pixel,
            "peak_rss_mb": _max_rss_mb(), "rss_after_build_mb": rss_model, "target_gb": MEMORY_TARGET_GB,
            "under_target": _max_rss_mb() / 1024 < MEMORY_TARGET_GB,
            "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "machine": machine_info()}


# ---------------------------------------------------------------- orchestration (parent process)


def _child(kind: str, kwargs: dict, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "ignn_lab.lab.bench_models", "--child", kind, json.dumps(kwargs)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {**kwargs, "error": f"exit {proc.returncode}: " + " | ".join(tail)}
    res = json.loads(lines[-1][len("RESULT "):])
    res["child_wall_seconds"] = time.perf_counter() - t0
    return res


def _configs(quick: bool, paper: bool, sizes, scales) -> list[dict]:
    if quick:
        return [{"model": m, "scale": 2, "size": 48, "warmup": 0, "repeats": 1} for m in LITE]
    out = []
    for models, extra in ((LITE, {"warmup": 1, "repeats": 3}), (PAPER if paper else (), {"warmup": 1, "repeats": 1})):
        for scale in scales:
            for size in sizes:
                out += [{"model": m, "scale": scale, "size": size, **extra} for m in models]
    return out


def _ratios(results: list[dict], pairs: list[dict] = ()) -> list[dict]:
    by = {(r["model"], r["scale"], r["size"]): r for r in results if "error" not in r}
    paired = {(p["ignn"], p["scale"], p["size"]): p for p in pairs if "error" not in p}
    out = []
    for edsr, ignn in (("edsr-lite", "ignn-lite"), ("edsr", "ignn")):
        for (m, scale, size), r in sorted(by.items()):
            if m != ignn or (edsr, scale, size) not in by:
                continue
            e = by[(edsr, scale, size)]
            item = {"ignn": ignn, "edsr": edsr, "scale": scale, "size": size,
                    "time_ratio": r["seconds"] / e["seconds"], "flops_ratio": r.get("flops", 0) / e.get("flops", 1),
                    "params_ratio": r["params"] / e["params"]}
            if (ignn, scale, size) in paired:  # alternating runs in one process: robust to load changes
                item["time_ratio_separate"] = item["time_ratio"]
                item["time_ratio"] = paired[(ignn, scale, size)]["time_ratio"]
            if ignn == "ignn-lite" and scale == 2 and size == 256:
                item["target"] = SPEED_TARGET
                item["meets_target"] = item["time_ratio"] <= SPEED_TARGET
            out.append(item)
    return out


def _chart(report: dict, png: Path) -> None:

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in report["results"] if "error" not in r]
    groups = [(title, [r for r in ok if r["model"] in names])
              for title, names in (("lite", LITE), ("paper size", PAPER))]
    groups = [(t, rows) for t, rows in groups if rows]
    if not groups:
        return
    fig, axes = plt.subplots(2, len(groups), figsize=(max(5, 0.9 * len(ok) + 2), 7), squeeze=False)
    for col, (title, rows) in enumerate(groups):
        a1, a2 = axes[0][col], axes[1][col]
        x = list(range(len(rows)))
        rest = [r["seconds"] - sum(r.get("graph_seconds", {}).values()) for r in rows]
        for family, colour in (("edsr", "#4c72b0"), ("ignn", "#8c8c8c")):
            sel = [i for i, r in enumerate(rows) if r["model"].startswith(family)]
            if sel:
                a1.bar([x[i] for i in sel], [rest[i] for i in sel], color=colour,
                       label="EDSR" if family == "edsr" else "IGNN: everything else")
        bottom = list(rest)
        for key, colour in (("son", "#dd8452"), ("graph_construction", "#c44e52"), ("aggregation", "#55a868")):
            vals = [r.get("graph_seconds", {}).get(key, 0.0) for r in rows]
            a1.bar(x, vals, bottom=bottom, color=colour, label="IGNN " + key.replace("_", " "))
            bottom = [b + v for b, v in zip(bottom, vals)]
        a1.set_ylabel("wall seconds per image (CPU)")
        a1.set_title(title, fontsize=9)
        a1.legend(fontsize=6)
        a2.bar(x, [r["peak_rss_mb"] / 1024 for r in rows], color="#4c72b0")
        a2.set_ylabel("peak RSS of the process (GB)")
        a2.set_xticks(x)
        a2.set_xticklabels([f"{r['model']}\n×{r['scale']} {r['size']}²" for r in rows], fontsize=6)
        a1.set_xticks(x)
        a1.set_xticklabels([])
    fig.suptitle(f"EDSR vs IGNN, {report['machine']['torch_threads']} CPU threads, load "
                 f"{report['loadavg_before'][0]:.1f} → {report['loadavg_after'][0]:.1f}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, png)
    plt.close(fig)


def markdown(report: dict) -> str:
    """The report as Markdown tables (one row per configuration, then the IGNN/EDSR ratios)."""
    lines = ["| model | scale | LR | params | GFLOPs | s / image | peak RSS (GB) | graph construction | aggregation |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        if "error" in r:
            err = r["error"].split(" | ")[-1].replace("|", "/")[:90]
            lines.append(f"| {r['model']} | ×{r['scale']} | {r['size']}² | error: {err} | | | | | |")
            continue
        sh = r.get("graph_share", {})
        pct = (lambda k: f"{100 * sh[k]:.0f} %" if k in sh else "–")
        lines.append(f"| {r['model']} | ×{r['scale']} | {r['size']}² | {r['params'] / 1e6:.2f} M | "
                     f"{r.get('flops', 0) / 1e9:.1f} | {r['seconds']:.3f} | {r['peak_rss_mb'] / 1024:.2f} | "
                     f"{pct('graph_construction')} | {pct('aggregation')} |")
    lines += ["", "| IGNN / EDSR | scale | LR | time | FLOPs | params |", "|---|---|---|---|---|---|"]
    for q in report["ratios"]:
        mark = ""
        if "target" in q:
            mark = f" (target ≤ {q['target']}: {'met' if q['meets_target'] else 'not met'})"
        lines.append(f"| {q['ignn']} / {q['edsr']} | ×{q['scale']} | {q['size']}² | {q['time_ratio']:.2f}×{mark} | "
                     f"{q['flops_ratio']:.2f}× | {q['params_ratio']:.2f}× |")
    if report.get("paired"):
        lines += ["", "Lite time ratios: EDSR and IGNN timed alternately in one process (median of "
                      f"{report['paired'][0].get('rounds', '?')} rounds each); paper size: the separate runs above."]
    m = report["machine"]
    lines += ["", f"{m['cpu']}, {m['torch_threads']} torch threads, torch {m['torch']}; load average "
                  f"{report['loadavg_before'][0]:.2f} before, {report['loadavg_after'][0]:.2f} after; "
                  f"{report['seconds_total']:.0f} s in total."]
    return "\n".join(lines) + "\n"


def run(json_path: str | os.PathLike, *, quick: bool = False, paper: bool = True, sizes: tuple[int, ...] = (128, 256),
        scales: tuple[int, ...] = (2, 4), threads: int | None = None, timeout: float = 1800.0,
        progress: bool = True) -> dict:
    """Benchmark EDSR vs IGNN (lite and paper size); write ``json_path``, a PNG chart and Markdown tables beside it.

    Args:
        json_path: output JSON (the chart and the tables: the same path with suffixes ``.png`` and ``.md``).
        quick: lite models only, ×2, one 48² image, no warm-up: finishes in seconds (used by the tests).
        paper: include the paper-size models (slow on a CPU: several minutes). Each configuration runs one
            warm-up forward that counts FLOPs, then 3 (lite) or 1 (paper size) timed forwards.
        sizes: LR sides. scales: SR factors. threads: torch threads per child (default: all cores).
        timeout: seconds allowed per configuration.
        progress: a tqdm bar over configurations.

    Returns:
        The report: ``results`` (one dict per configuration, see :func:`measure`), ``paired`` (lite EDSR and IGNN
        timed alternately in one process, :func:`measure_pair`), ``ratios`` (IGNN / EDSR time — from the paired
        runs where there are some, else from the separate ones — FLOPs and parameters; the 1.6× target on
        the ignn-lite ×2 256² row), machine and load.
    """
    from tqdm.auto import tqdm

    json_path = Path(json_path)
    configs = _configs(quick, paper, sizes, scales)
    load0, t0 = os.getloadavg(), time.perf_counter()
    results = []
    pairs = [] if quick else [{"edsr": LITE[0], "ignn": LITE[1], "scale": sc, "size": sz}
                              for sc in scales for sz in sizes]
    for cfg in tqdm(configs + pairs, desc="bench models", disable=not progress):
        if "edsr" in cfg:
            pairs[pairs.index(cfg)] = _child("pair", {**cfg, "threads": threads}, timeout)
        else:
            results.append(_child("measure", {**cfg, "threads": threads}, timeout))
    report = {"benchmark": "models", "quick": quick, "paper": paper, "results": results,
              "ratios": _ratios(results, pairs), "paired": pairs, "seconds_total": time.perf_counter() - t0,
              "loadavg_before": load0, "loadavg_after": os.getloadavg(), "machine": machine_info(),
              "notes": "seconds: median wall time of model(lr) under torch.inference_mode, float32, random weights "
                       "(seed 0), skimage astronaut resized to size² LR; peak_rss_mb: the child process's max RSS "
                       "after the first forward; flops: FlopCounterMode (conv/matmul only)."}
    atomic_write_bytes(json_path, json.dumps(report, indent=1).encode())
    atomic_write_bytes(json_path.with_suffix(".md"), markdown(report).encode())
    _chart(report, json_path.with_suffix(".png"))
    return report


def memory_check(json_path: str | os.PathLike, *, model: str = "ignn", scale: int = 2, size: int = 1024,
                 budget_gb: float | None = None, tile: int | None = None, threads: int | None = None,
                 timeout: float = 4 * 3600.0) -> dict:
    """Paper-size IGNN ×2 on a size×size LR image with tiling, in a subprocess; writes its peak RSS to JSON.

    Args:
        json_path: output JSON.
        model, scale, size: the configuration (default: 1024² ×2 paper-size IGNN, the memory target).
        budget_gb: the inference engine's memory budget (None: its default). tile: a fixed tile side instead.

    Returns:
        The child's report (:func:`measure_tiled`) with ``under_target`` (peak RSS < 6 GB).
    """
    res = _child("tiled", {"model": model, "scale": scale, "size": size, "budget_gb": budget_gb, "tile": tile,
                           "threads": threads}, timeout)
    atomic_write_bytes(Path(json_path), json.dumps({"benchmark": "models-memory-check", **res}, indent=1).encode())
    return res


def main(argv: list[str] | None = None) -> int:
    """The subprocess entry of every measurement (``python -m ignn_lab.lab.bench_models --child KIND JSON``, run by
    :func:`run` and :func:`memory_check`); users run the benchmark with ``ignn-lab bench models`` / ``memory``."""
    p = argparse.ArgumentParser(prog="python -m ignn_lab.lab.bench_models", description=main.__doc__)
    p.add_argument("--child", nargs=2, metavar=("KIND", "JSON"), required=True)
    kind, kwargs = p.parse_args(argv).child
    fn = {"measure": measure, "pair": measure_pair, "tiled": measure_tiled}[kind]
    print("RESULT " + json.dumps(fn(**json.loads(kwargs))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
