"""The trainer: one :func:`fit` from a 2-core laptop to ``torchrun`` on a GPU cluster, resumable to the bit.

A run folder holds

* ``config.json`` — the :class:`~ignn_lab.engine.train_config.TrainConfig`;
* ``log.jsonl`` — one line per logging step (loss, learning rate, patches/s) and per validation (PSNR-Y,
  SSIM-Y on the held-out images);
* ``curves.png`` — loss and validation PSNR, rewritten at each validation;
* ``last.pt`` — everything needed to continue (weights, optimiser, EMA, RNG states, step, config,
  provenance), written atomically every ``save_every`` steps, at the end, and on SIGINT / SIGTERM / the time
  limit; it is also a model checkpoint (``evaluate --model DIR/last.pt`` works);
* ``best.pt`` — the model (EMA weights when EMA is on) with the best validation PSNR.

Everything loads with ``torch.load(weights_only=True)``. The crops of step t come from ``(seed, rank, t)`` alone
and the learning rate from t alone, so ``--resume`` continues exactly where the run stopped: on CPU with the
same thread count, N steps + stop + resume + N steps gives the same weights, bit for bit, as 2N steps.
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import signal
import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ignn_lab.data.convert import on_rgb
from ignn_lab.data.io import atomic_write_bytes
from ignn_lab.data.training import (PatchSampler, ValImage, held_out, load_training_images,
                                    load_validation_images, resolve_set)
from ignn_lab.engine import distributed
from ignn_lab.engine.provenance import environment, git_commit
from ignn_lab.engine.schedule import learning_rate
from ignn_lab.engine.train_config import TrainConfig
from ignn_lab.engine.train_state import (RESUMABLE_CHANGES, TRAIN_FORMAT, TRAIN_FORMAT_VERSION, init_from,
                                         read_training_state, restore_rng, resumed_config, rng_state)
from ignn_lab.metrics import psnr_ssim
from ignn_lab.models.checkpoint import save as save_model


__all__ = ["RESUMABLE_CHANGES", "TrainResult", "fit", "read_training_state", "validate"]


@dataclass
class TrainResult:
    """What :func:`fit` did: ``status`` is ``finished``, ``interrupted`` (a signal) or ``time-limit``."""

    out: Path
    status: str
    step: int
    steps: int
    best_psnr: float | None
    last_psnr: float | None
    seconds: float
    history: list[dict] = field(default_factory=list)
    model: nn.Module | None = field(default=None, repr=False)  # the evaluated weights (EMA when on), eval mode

    @property
    def best_path(self) -> Path:
        return self.out / "best.pt"

    @property
    def last_path(self) -> Path:
        return self.out / "last.pt"


class _StopRequest:
    """SIGINT / SIGTERM set a flag that the loop reads between steps; the run then saves and returns.

    A second signal while the state is being saved is only acknowledged: the save finishes, nothing is lost.
    Installed only in the main thread (signals cannot be caught elsewhere).
    """

    def __init__(self) -> None:
        self.signal: str | None = None
        self._old: dict[int, Any] = {}

    def _handler(self, signum, frame) -> None:  # noqa: ARG002
        if self.signal is None:
            self.signal = signal.Signals(signum).name
            print(f"\n{self.signal}: stopping after this step and saving last.pt (resume with --resume)",
                  file=sys.stderr, flush=True)
        else:
            print(f"\n{signal.Signals(signum).name}: already stopping; saving last.pt first", file=sys.stderr,
                  flush=True)

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _resolve_device(device: str | torch.device | None) -> torch.device:
    dev = torch.device(device or "cpu")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r}: this torch build sees no CUDA device; use --device cpu")
        if dev.index is None:
            dev = torch.device("cuda", distributed.dist_info().local_rank)
        torch.cuda.set_device(dev)
    elif dev.type != "cpu":
        raise ValueError(f"device must be cpu or cuda[:N], got {device!r}")
    return dev


@torch.no_grad()
def validate(model: nn.Module, images: list[ValImage], scale: int, device: torch.device) -> dict[str, float]:
    """PSNR-Y / SSIM-Y (the evaluation protocol: uint8 output, Y channel, ``scale`` pixels shaved) of
    ``model`` on ``images``, averaged; float32, whole images."""
    was_training = model.training
    model.eval()
    psnrs, ssims = [], []
    with torch.inference_mode():
        for im in images:
            sr = on_rgb(model, im.lr, device=device)
            p, s = psnr_ssim(sr, im.hr, crop_border=scale)
            psnrs.append(p)
            ssims.append(s)
    model.train(was_training)
    return {"val_psnr": float(np.mean(psnrs)), "val_ssim": float(np.mean(ssims))}


class _Log:
    """``log.jsonl`` (rank 0): appended line by line; on resume, records after the resumed step are dropped
    (the steps after it are run again)."""

    def __init__(self, path: Path, enabled: bool, resume_step: int | None):
        self.path, self.enabled = path, enabled
        self.records: list[dict] = []
        if not enabled:
            return
        if resume_step is not None and path.is_file():
            from ignn_lab.viz.curves import read_log

            self.records = [r for r in read_log(path) if r.get("step", 0) <= resume_step]
            atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in self.records).encode())
        elif path.exists():
            path.unlink()

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        self.records.append(record)
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def _curves(out: Path, records: list[dict], title: str) -> None:
    from ignn_lab.viz import save_figure
    from ignn_lab.viz.curves import training_curves_figure

    import matplotlib.pyplot as plt

    fig = training_curves_figure({title: records}, title=title)
    save_figure(fig, out / "curves.png")
    plt.close(fig)


def _check_out(out: Path, resume: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is an existing file; give a folder for the run")
    last = out / "last.pt"
    if resume and not last.is_file():
        raise FileNotFoundError(f"--resume: no {last} to continue from")
    if not resume and last.is_file():
        raise ValueError(f"{out} already holds a run (last.pt); pass --resume to continue it, or choose another "
                         "--out")


def fit(config: TrainConfig | None, out: str | os.PathLike, *, resume: bool = False,
        device: str | torch.device = "cpu", max_minutes: float | None = None, progress: bool = True,
        command: str | None = None, stop_after: int | None = None) -> TrainResult:
    """Train a model; see the module docstring for what the run folder holds.

    Args:
        config: the run's config (None with ``resume``: the one saved in ``out/last.pt``).
        out: the run folder (created).
        resume: continue from ``out/last.pt``; only :data:`RESUMABLE_CHANGES` may differ from the saved config.
        device: ``cpu`` or ``cuda[:N]`` (under torchrun ``cuda`` means this rank's local GPU).
        max_minutes: stop (saving ``last.pt``) after this much wall time; resume later with ``resume=True``.
        progress: tqdm bar (rank 0).
        command: recorded in the provenance (default: this process's command line).
        stop_after: stop after this step as if interrupted (tests of resuming use it).

    Returns:
        A :class:`TrainResult`.
    """
    from tqdm.auto import tqdm

    from ignn_lab.models import build

    out = Path(out)
    _check_out(out, resume)
    dev = _resolve_device(device)
    info, started_group = distributed.init_distributed(dev)
    state = read_training_state(out / "last.pt") if resume else None
    if state is not None:
        config = resumed_config(state["config"], config, out / "last.pt")
    if config is None:
        raise ValueError("fit needs a config (or resume=True with a run folder holding last.pt)")
    if config.batch % info.world:
        raise ValueError(f"batch={config.batch} does not split over {info.world} processes; use a multiple")
    per_rank = config.batch // info.world
    old_det = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(config.deterministic)
    try:
        torch.manual_seed(config.seed)
        model = build(config.model, config.scale, **config.model_overrides)
        initialised = init_from(model, config.init_from) if config.init_from and state is None else None
        model = model.to(dev).train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=config.lr, betas=config.betas, eps=config.eps,
                               weight_decay=config.weight_decay)
        ema = copy.deepcopy(model).eval().requires_grad_(False) if config.ema_decay else None
        step, best, best_step, wall0, history, sessions = 0, None, None, 0.0, [], []
        if state is not None:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            if ema is not None:
                ema.load_state_dict(state["ema"])
            restore_rng(state["rng"])
            step, best, best_step = int(state["step"]), state.get("best_psnr"), state.get("best_step")
            wall0, history = float(state.get("wall_seconds", 0.0)), list(state.get("validations", []))
            sessions = list(state.get("sessions", []))
        net: nn.Module = model
        if info.distributed:
            from torch.nn.parallel import DistributedDataParallel

            net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
        forward = torch.compile(net) if config.compile else net
        held = [r.path for r in held_out(resolve_set(config.val_set, config.data_root), config.val_count)]
        val_images = (load_validation_images(config.val_set, config.val_count, config.scale,
                                             data_root=config.data_root) if info.is_main else [])
        images = load_training_images(config.train_sets, config.scale, config.patch_size,
                                      data_root=config.data_root, exclude=held,
                                      progress=progress and info.is_main)
        sampler = PatchSampler(images, config.scale, config.patch_size, config.seed)
        if info.is_main:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(out / "config.json", json.dumps(config.to_dict(), indent=1).encode())
        log = _Log(out / "log.jsonl", info.is_main, step if state is not None else None)
        tb = _tensorboard(out, config) if info.is_main else None
        amp = (torch.autocast(dev.type, dtype=torch.bfloat16) if config.amp == "bf16" else nullcontext())
        prov_base = {"command": command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                     "git_commit": git_commit(), "device": str(dev), "world_size": info.world,
                     "host": platform.node(), **environment(), "train_config": config.to_dict()}
        # A resumed run may have changed steps (the schedule) or the code: every session's command stays on record.
        sessions.append({"command": prov_base["command"], "from_step": step, "steps": config.steps,
                         "git_commit": prov_base["git_commit"],
                         **({"init_from": initialised} if initialised is not None else {})})
        prov_base["sessions"] = sessions
        eval_model = ema if ema is not None else model
        t_start = time.perf_counter()
        deadline = None if max_minutes is None else t_start + 60.0 * max_minutes
        last_val: float | None = history[-1]["val_psnr"] if history else None

        def save_last() -> None:
            if not info.is_main:
                return
            training = {"format": TRAIN_FORMAT, "version": TRAIN_FORMAT_VERSION, "step": step,
                        "config": config.to_dict(), "model": model.state_dict(), "optimizer": opt.state_dict(),
                        "ema": ema.state_dict() if ema is not None else None, "rng": rng_state(),
                        "sampler": {"seed": config.seed, "next_step": step}, "best_psnr": best,
                        "best_step": best_step, "validations": history, "sessions": sessions,
                        "wall_seconds": wall()}
            save_model(eval_model, out / "last.pt", provenance=prov(), training=training)

        def wall() -> float:
            return wall0 + time.perf_counter() - t_start

        def prov() -> dict:
            return {**prov_base, "step": step, "steps": config.steps, "val_psnr": last_val, "best_psnr": best,
                    "wall_seconds": round(wall(), 1),
                    "validation": f"{config.val_set}: {config.val_count} held-out images, PSNR-Y (protocol)"}

        def run_validation() -> None:
            nonlocal best, best_step, last_val
            if info.is_main and val_images:
                scores = validate(eval_model, val_images, config.scale, dev)
                last_val = scores["val_psnr"]
                is_best = best is None or last_val > best
                if is_best:
                    best, best_step = last_val, step
                rec = {"step": step, **scores, "best": is_best, "elapsed": round(wall(), 1)}
                history.append(rec)
                log.write(rec)
                if is_best:
                    save_model(eval_model, out / "best.pt", provenance=prov())
                if tb is not None:
                    tb.add_scalar("val/psnr", last_val, step)
                _curves(out, log.records, f"{config.model} ×{config.scale}")
            distributed.barrier()

        status = "finished"
        loss_sum, loss_n, t_log, done_since_log = 0.0, 0, time.perf_counter(), 0
        postfix: dict[str, str] = {}
        bar = tqdm(total=config.steps, initial=step, desc=f"train {config.model} ×{config.scale}", unit="step",
                   disable=not (progress and info.is_main), dynamic_ncols=True)
        with _StopRequest() as stop:
            while step < config.steps:
                lr_now = learning_rate(step, lr=config.lr, steps=config.steps, schedule=config.schedule,
                                       warmup_steps=config.warmup_steps, cycle_steps=config.cycle_steps,
                                       cycle_mult=config.cycle_mult, min_lr=config.min_lr,
                                       step_size=config.step_size, gamma=config.gamma)
                for group in opt.param_groups:
                    group["lr"] = lr_now
                lr_b, hr_b = sampler.batch(step, info.rank, per_rank)
                lr_b, hr_b = lr_b.to(dev, non_blocking=True), hr_b.to(dev, non_blocking=True)
                opt.zero_grad(set_to_none=True)
                with amp:
                    sr = forward(lr_b)
                loss = F.l1_loss(sr.float(), hr_b)
                loss_value = loss.detach().item()
                if not math.isfinite(loss_value):
                    raise FloatingPointError(f"the loss is {loss_value} at step {step}; lower lr "
                                             f"({config.lr}) or set grad_clip")
                loss.backward()
                if config.grad_clip:
                    torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
                opt.step()
                step += 1
                if ema is not None:
                    _ema_update(ema, model, min(config.ema_decay, (1 + step) / (10 + step)))
                loss_sum, loss_n, done_since_log = loss_sum + loss_value, loss_n + 1, done_since_log + 1
                bar.update()
                if step % config.log_every == 0 or step == config.steps:
                    now = time.perf_counter()
                    rate = done_since_log * config.batch / max(now - t_log, 1e-9)
                    rec = {"step": step, "loss": loss_sum / loss_n, "lr": lr_now, "patches_per_s": round(rate, 1),
                           "elapsed": round(wall(), 1)}
                    log.write(rec)
                    if tb is not None:
                        tb.add_scalar("train/loss", rec["loss"], step)
                        tb.add_scalar("train/lr", lr_now, step)
                    postfix = {"loss": f"{rec['loss']:.4f}", "pps": f"{rate:.0f}"}
                    loss_sum, loss_n, t_log, done_since_log = 0.0, 0, now, 0
                if step % config.val_every == 0 or step == config.steps:
                    run_validation()
                if step % config.log_every == 0 or step % config.val_every == 0:
                    bar.set_postfix({**postfix, "val": f"{last_val:.2f}" if last_val else "-"})
                halt = 0.0
                if stop.signal is not None:
                    halt = 1.0
                elif deadline is not None and time.perf_counter() > deadline:
                    halt = 2.0
                elif stop_after is not None and step >= stop_after:
                    halt = 1.0
                halt = distributed.all_reduce_max(halt, dev) if info.distributed else halt
                if step % config.save_every == 0 or step == config.steps or halt:
                    save_last()
                if halt:
                    status = "time-limit" if halt == 2.0 else "interrupted"
                    break
        bar.close()
        if tb is not None:
            tb.close()
        distributed.barrier()
        return TrainResult(out, status, step, config.steps, best, last_val, wall(), history, eval_model.eval())
    finally:
        torch.use_deterministic_algorithms(old_det)
        if started_group:
            distributed.shutdown()


@torch.no_grad()
def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        if p.requires_grad:
            e.lerp_(p.detach(), 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def _tensorboard(out: Path, config: TrainConfig):
    if not config.tensorboard:
        return None
    from ignn_lab._optional import require

    require("tensorboard", "pip install tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(out / "tensorboard"))
