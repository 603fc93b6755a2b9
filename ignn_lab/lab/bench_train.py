"""``ignn-lab bench train``: training steps/s of EDSR-lite and IGNN-lite, timed alternately in one process.

One step = the ``lite-x2`` recipe's: 16 LR patches of 48² (real T91 crops when the data root is there, else
random), forward, L1, backward, Adam. For each variant — float32 (channels-last activations, the kit's default),
float32 with contiguous activations, bfloat16 autocast (with either memory format), and optionally bfloat16 +
``torch.compile`` — the two models are stepped in turn (A, B, A, B, …) so that drift in the machine's speed hits
both alike. ``threads`` sets torch's thread count (the lite recipe runs one training per core, one thread each).
Writes JSON and a Markdown table beside it.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ignn_lab.data.io import atomic_write_bytes
from ignn_lab.lab._machine import machine_info

__all__ = ["VARIANTS", "run", "step_fn"]

VARIANTS = ("fp32", "fp32-contiguous", "bf16", "bf16-contiguous", "bf16-compile")
MODELS = ("edsr-lite", "ignn-lite")


def _batch(scale: int, batch: int, patch: int, data_root) -> tuple[torch.Tensor, torch.Tensor, str]:
    try:
        from ignn_lab.data.training import PatchSampler, load_training_images

        imgs = load_training_images(["T91"], scale, patch, data_root=data_root, progress=False)
        lr, hr = PatchSampler(imgs, scale, patch, seed=0).batch(0, 0, batch)
        return lr, hr, "T91 crops"
    except (FileNotFoundError, ValueError):
        gen = torch.Generator().manual_seed(0)
        return (torch.rand(batch, 3, patch, patch, generator=gen),
                torch.rand(batch, 3, scale * patch, scale * patch, generator=gen), "random")


def step_fn(name: str, variant: str, lr: torch.Tensor, hr: torch.Tensor, *, scale: int = 2,
            **overrides: Any) -> Callable[[], float]:
    """A closure running one training step of ``name`` in ``variant``; returns the loss."""
    from ignn_lab.models import build

    torch.manual_seed(0)
    model = build(name, scale, **overrides).train()
    if variant.endswith("-contiguous"):
        model.memory_format = torch.contiguous_format
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    fwd = torch.compile(model) if variant.endswith("compile") else model
    amp = torch.autocast("cpu", dtype=torch.bfloat16) if variant.startswith("bf16") else nullcontext()

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        with amp:
            out = fwd(lr)
        loss = F.l1_loss(out.float(), hr)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def _alternate(fns: dict[str, Callable], repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
    return times


def run(json_path: str | os.PathLike, *, quick: bool = False, variants: tuple[str, ...] = VARIANTS[:3],
        repeats: int | None = None, data_root=None, threads: int | None = None) -> dict:
    """Time the variants and write ``json_path`` (+ ``.md``); returns the dict.

    ``threads``: torch threads for the run (default: torch's, all cores), restored afterwards.
    """
    reps = repeats or (3 if quick else 12)
    before = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    try:
        return _run(json_path, variants, reps, data_root)
    finally:
        torch.set_num_threads(before)


def _run(json_path, variants: tuple[str, ...], reps: int, data_root) -> dict:
    lr, hr, source = _batch(2, 16, 48, data_root)
    out: dict[str, Any] = {"machine": machine_info(), "batch": "16 × 48² LR (×2)", "data": source,
                           "repeats": reps, "torch_threads": torch.get_num_threads(), "variants": {}}
    for variant in variants:
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; accepted: {', '.join(VARIANTS)}")
        fns = {m: step_fn(m, variant, lr, hr) for m in MODELS}
        t0 = time.perf_counter()
        for fn in fns.values():  # warm-up: oneDNN kernels (and compiled graphs) are built on the first calls
            fn()
            fn()
        warm = time.perf_counter() - t0
        times = _alternate(fns, reps)
        med = {m: statistics.median(v) for m, v in times.items()}
        out["variants"][variant] = {
            "median_step_s": med, "steps_per_s": {m: 1 / v for m, v in med.items()}, "times_s": times,
            "ratio_ignn_over_edsr": med["ignn-lite"] / med["edsr-lite"], "warmup_s": warm,
            "ratio_per_pair": sorted(a / b for a, b in zip(times["ignn-lite"], times["edsr-lite"]))}
    base = out["variants"].get("fp32")
    if base:
        for name, v in out["variants"].items():
            v["speedup_vs_fp32"] = {m: base["median_step_s"][m] / v["median_step_s"][m] for m in MODELS}
    atomic_write_bytes(json_path, json.dumps(out, indent=1).encode())
    lines = [f"{out['torch_threads']} torch thread(s); {source}; median of {reps} steps per model, alternating", "",
             "| variant | EDSR-lite step (s) | IGNN-lite step (s) | IGNN / EDSR | speed-up vs fp32 (EDSR, IGNN) |",
             "|---|---|---|---|---|"]
    for name, v in out["variants"].items():
        sp = v.get("speedup_vs_fp32", {})
        lines.append(f"| {name} | {v['median_step_s']['edsr-lite']:.3f} | {v['median_step_s']['ignn-lite']:.3f} | "
                     f"{v['ratio_ignn_over_edsr']:.2f} | {sp.get('edsr-lite', float('nan')):.2f}, "
                     f"{sp.get('ignn-lite', float('nan')):.2f} |")
    atomic_write_bytes(Path(json_path).with_suffix(".md"), ("\n".join(lines) + "\n").encode())
    return out
