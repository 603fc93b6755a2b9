"""How the lite sizes were chosen: CPU timings of a training step and of inference, written as JSON.

``ignn-lab bench sizing --json runs/models_sizing.json [--quick] [--threads N] [--sweep 32x16,44x16]``

* train step: 16 LR patches of 48×48 (×2), forward + L1 loss + backward + Adam step;
* inference: one 256×256 LR image (×2) under ``torch.inference_mode`` (the son computed by the model);
* the IGNN-lite / EDSR-lite inference ratio (target ≤ 1.6) and where IGNN-lite's extra time goes;
* with ``--sweep``, the same train-step and inference timings for other bodies (blocks × width), which is how
  the lite body was chosen.

The models are timed alternately (A, B, A, B, ...) so that load from other processes hits both alike; medians
are reported with every sample and the 1-minute load average before and after. On a busy machine, run with
``--threads 1`` and read the CPU-time figures (the work done, not the wait); on a quiet one, the wall times.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from typing import Any, Callable

import torch

from ignn_lab.data.io import atomic_write_bytes
from ignn_lab.lab._machine import machine_info
from ignn_lab.models import build

__all__ = ["inference_fn", "parse_bodies", "run", "stage_split", "summary", "sweep", "train_step_fn"]


def train_step_fn(name: str, scale: int = 2, *, batch: int = 16, patch: int = 48,
                  **overrides: Any) -> Callable:
    """A closure running one training step (forward, L1, backward, Adam) on fixed random patches."""
    torch.manual_seed(0)
    model = build(name, scale, **overrides).train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    lr = torch.rand(batch, 3, patch, patch)
    hr = torch.rand(batch, 3, patch * scale, patch * scale)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.l1_loss(model(lr), hr).backward()
        opt.step()

    return step


def inference_fn(name: str, scale: int = 2, *, size: int = 256, **overrides: Any) -> Callable:
    """A closure running one forward pass on a ``size``×``size`` random LR image."""
    torch.manual_seed(0)
    model = build(name, scale, **overrides).eval()
    lr = torch.rand(1, 3, size, size)

    def fwd() -> None:
        with torch.inference_mode():
            model(lr)

    return fwd


def _alternate(fns: dict[str, Callable], repeats: int) -> dict[str, dict[str, Any]]:
    for fn in fns.values():  # warm-up (oneDNN builds its kernels on the first call of each shape)
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
            cpu[key].append(time.process_time() - c0)
    return {k: {"median_s": statistics.median(v), "times_s": v, "cpu_median_s": statistics.median(cpu[k]),
                "cpu_times_s": cpu[k]} for k, v in times.items()}


def stage_split(scale: int = 2, *, size: int = 256, name: str = "ignn-lite") -> dict[str, float]:
    """Seconds per stage of one IGNN forward: graph (embedding + kNN + diffs), aggregation (the rest of the
    GCN), the fusion convs, and the whole call (the EDSR-like remainder is the difference)."""
    model = build(name, scale).eval()
    lr = torch.rand(1, 3, size, size)
    spent = {"graph": 0.0, "gcn": 0.0, "fuse_b": 0.0, "fuse_up": 0.0}

    def timed(fn: Callable, key: str) -> Callable:
        def wrapper(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            out = fn(*a, **k)
            spent[key] += time.perf_counter() - t0
            return out
        return wrapper

    gcn = model.gcn
    gcn.build_graph = timed(gcn.build_graph, "graph")
    gcn.forward = timed(gcn.forward, "gcn")
    model.fuse_b.forward = timed(model.fuse_b.forward, "fuse_b")
    if hasattr(model, "fuse_up"):
        model.fuse_up.forward = timed(model.fuse_up.forward, "fuse_up")
    with torch.inference_mode():
        model(lr)
        spent.update({k: 0.0 for k in spent})
        t0 = time.perf_counter()
        model(lr)
        total = time.perf_counter() - t0
    return {"graph_s": spent["graph"], "aggregation_s": spent["gcn"] - spent["graph"],
            "fuse_b_s": spent["fuse_b"], "fuse_up_s": spent["fuse_up"], "total_s": total}


def parse_bodies(text: str) -> list[tuple[int, int]]:
    """``"32x16,44x16"`` → ``[(32, 16), (44, 16)]`` (residual blocks × channels)."""
    bodies = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        try:
            blocks, width = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise ValueError(f"a body is BLOCKSxWIDTH, e.g. 44x16; got {item!r}") from None
        if blocks < 2 or width < 1:
            raise ValueError(f"a body needs at least 2 blocks and 1 channel, got {item!r}")
        bodies.append((blocks, width))
    return bodies


def sweep(bodies: list[tuple[int, int]], *, train_reps: int = 5, inference_reps: int = 9) -> list[dict[str, Any]]:
    """EDSR-lite and IGNN-lite train-step and 256² inference medians for each body (blocks, width), the two
    models timed alternately; the graph sits after block ``blocks // 2`` as in the paper."""
    rows = []
    for blocks, width in bodies:
        body = {"n_resblocks": blocks, "n_feats": width}
        train = _alternate({n: train_step_fn(n, **body) for n in ("edsr-lite", "ignn-lite")}, train_reps)
        infer = _alternate({n: inference_fn(n, **body) for n in ("edsr-lite", "ignn-lite")}, inference_reps)
        row = {"blocks": blocks, "width": width}
        for n in ("edsr-lite", "ignn-lite"):
            row[f"train_step_s_{n}"] = train[n]["median_s"]
            row[f"inference_256_s_{n}"] = infer[n]["median_s"]
        row["inference_ratio"] = row["inference_256_s_ignn-lite"] / row["inference_256_s_edsr-lite"]
        rows.append(row)
    return rows


def run(json_path: str | os.PathLike, *, quick: bool = False,
        bodies: list[tuple[int, int]] | None = None) -> dict[str, Any]:
    """Time the lite models (and, with ``bodies``, a sweep of other bodies) and write the results to
    ``json_path``; returns the dict."""
    reps = 3 if quick else 9
    out: dict[str, Any] = {"machine": machine_info(), "load_before": os.getloadavg()[0]}
    names = ("edsr-lite", "ignn-lite")
    out["lite_configs"] = {n: build(n, 2).config.to_dict() for n in names}
    out["train_step_16x48x48"] = _alternate({n: train_step_fn(n) for n in names}, reps)
    out["inference_256"] = _alternate({n: inference_fn(n) for n in names}, reps)
    inf = out["inference_256"]
    out["ratio_ignn_over_edsr_256"] = inf["ignn-lite"]["median_s"] / inf["edsr-lite"]["median_s"]
    # process CPU time: with one thread it is the work done, unaffected by waiting for a busy machine's cores
    out["cpu_ratio_ignn_over_edsr_256"] = inf["ignn-lite"]["cpu_median_s"] / inf["edsr-lite"]["cpu_median_s"]
    pairs = zip(inf["ignn-lite"]["times_s"], inf["edsr-lite"]["times_s"], strict=True)
    out["ratio_per_pair_256"] = sorted(a / b for a, b in pairs)
    out["ignn_lite_stages_256"] = stage_split(2)
    if bodies:
        out["sweep"] = sweep(bodies, train_reps=3 if quick else 5, inference_reps=reps)
    out["load_after"] = os.getloadavg()[0]
    atomic_write_bytes(json_path, json.dumps(out, indent=2).encode())
    return out


def summary(res: dict[str, Any]) -> str:
    """The lines a command prints about a :func:`run` result."""
    lines = []
    for kind in ("train_step_16x48x48", "inference_256"):
        for name, r in res[kind].items():
            lines.append(f"{kind:20s} {name:10s} median {r['median_s']:.3f} s wall, {r['cpu_median_s']:.3f} s CPU")
    for row in res.get("sweep", []):
        lines.append(f"body {row['blocks']}x{row['width']}: train step EDSR-lite {row['train_step_s_edsr-lite']:.3f} s, "
                     f"IGNN-lite {row['train_step_s_ignn-lite']:.3f} s; inference ratio {row['inference_ratio']:.2f}")
    lines.append(f"IGNN-lite / EDSR-lite at 256²: wall {res['ratio_ignn_over_edsr_256']:.2f}, "
                 f"CPU time {res['cpu_ratio_ignn_over_edsr_256']:.2f}  "
                 f"(load {res['load_before']:.1f} → {res['load_after']:.1f})")
    return "\n".join(lines)
