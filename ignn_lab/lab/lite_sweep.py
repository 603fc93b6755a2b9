"""The lite body sweep: train each candidate body for the same CPU budget and compare validation PSNR.

How the lite body was chosen (``docs/models.md``): every candidate (blocks × width × res_scale, amp) of
``edsr-lite`` is timed for a few training steps on ``threads`` threads (CPU time), given as many steps as fit in
``minutes`` at that speed, trained with the ``lite-x2`` recipe (cosine over those steps), and scored on the
held-out validation images. Runs go in parallel, ``jobs`` at a time, each with its own threads.

``ignn-lab bench sweep --json OUT --minutes 12 --bodies 12x32x1,16x32x1 [--jobs 2 --threads 1]``
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ignn_lab.data.io import atomic_write_bytes

__all__ = ["Body", "parse_bodies", "run"]


@dataclass(frozen=True)
class Body:
    blocks: int
    width: int
    res_scale: float
    amp: str = "bf16"
    hr_feats: int | None = None

    @property
    def name(self) -> str:
        hr = f"h{self.hr_feats}" if self.hr_feats else ""
        return f"{self.blocks}x{self.width}x{self.res_scale:g}{hr}-{self.amp}"

    def overrides(self) -> dict:
        return {"n_resblocks": self.blocks, "n_feats": self.width, "res_scale": self.res_scale,
                "hr_feats": self.hr_feats}


def parse_bodies(text: str) -> list[Body]:
    """``"12x32x1,20x32x1h16,44x16x0.1:none"`` → bodies: blocks × width × res_scale, ``hN`` a width-N output
    path (``hr_feats``), ``:amp`` (default bf16)."""
    out = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        spec, _, amp = item.partition(":")
        try:
            b, w, rest = spec.lower().split("x")
            rs, _, hr = rest.partition("h")
            out.append(Body(int(b), int(w), float(rs), amp or "bf16", int(hr) if hr else None))
        except ValueError:
            raise ValueError(f"a body is BLOCKSxWIDTHxRES_SCALE[hHR][:amp], e.g. 12x32x1, 20x32x1h16 or "
                             f"44x16x0.1:none; got {item!r}") from None
    return out


def step_seconds(body: Body, *, model: str = "edsr-lite", threads: int = 1, repeats: int = 3) -> float:
    """Median CPU seconds of one ``lite-x2`` training step (16 × 48², forward, L1, backward, Adam) of ``body``
    (CPU time, not wall time: on one thread it is the work done, whatever else the machine runs)."""
    code = (
        "import torch,time,statistics,json;torch.set_num_threads(%d)\n"
        "from ignn_lab.models import build\n"
        "torch.manual_seed(0);m=build(%r,2,**%r).train()\n"
        "o=torch.optim.Adam([p for p in m.parameters() if p.requires_grad],1e-4)\n"
        "lr=torch.rand(16,3,48,48);hr=torch.rand(16,3,96,96);ts=[]\n"
        "for i in range(%d):\n"
        " t=time.process_time();o.zero_grad()\n"
        " with torch.autocast('cpu',dtype=torch.bfloat16,enabled=%r):\n  y=m(lr)\n"
        " torch.nn.functional.l1_loss(y.float(),hr).backward();o.step();ts.append(time.process_time()-t)\n"
        "print(json.dumps(statistics.median(ts[1:])))\n"
    ) % (threads, model, body.overrides(), repeats + 1, body.amp == "bf16")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=_env(threads))
    return float(res.stdout.strip().splitlines()[-1])


def _env(threads: int) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def _train(body: Body, steps: int, out: Path, model: str, threads: int, data_root: str | None) -> dict:
    sets = [f"model={model}", f"steps={steps}", f"warmup_steps={max(1, steps // 20)}", f"val_every={steps}",
            f"save_every={max(1, steps // 4)}", f"amp={body.amp}", "log_every=50",
            f"model_overrides={json.dumps(body.overrides())}"]
    if data_root:
        sets.append(f"data_root={data_root}")
    cmd = [sys.executable, "-m", "ignn_lab.cli", "train", "--config", "lite-x2", "--out", str(out), "--quiet"]
    for s in sets:
        cmd += ["--set", s]
    if (out / "last.pt").is_file():
        cmd.append("--resume")
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=_env(threads), stdout=subprocess.DEVNULL)
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    val = [r for r in log if "val_psnr" in r]
    return {"val_psnr": val[-1]["val_psnr"], "val_ssim": val[-1]["val_ssim"], "seconds": time.perf_counter() - t0}


def run(json_path: str | os.PathLike, bodies: list[Body], *, minutes: float = 12.0, jobs: int = 2,
        threads: int = 1, model: str = "edsr-lite", data_root: str | None = None) -> dict:
    """Train every body for ``minutes`` of ``threads``-thread CPU time (as steps, from its measured step
    time) and write ``json_path`` (+ ``.md`` table beside it). Runs go in ``json_path``'s folder, ``runs/``."""
    from ignn_lab.models import build

    json_path = Path(json_path)
    run_dir = json_path.parent / "runs"
    rows = []
    for body in bodies:
        t = step_seconds(body, model=model, threads=threads)
        net = build(model, 2, **body.overrides())
        params = sum(p.numel() for p in net.parameters() if p.requires_grad)
        rows.append({"body": body.name, "blocks": body.blocks, "width": body.width, "res_scale": body.res_scale,
                     "amp": body.amp, "params": params, "step_s": t, "steps": max(50, int(minutes * 60 / t))})
    with ThreadPoolExecutor(jobs) as pool:
        results = pool.map(lambda rb: _train(rb[1], rb[0]["steps"], run_dir / rb[1].name, model, threads,
                                             data_root), zip(rows, bodies))
        for row, res in zip(rows, results):
            row.update(res)
    out = {"model": model, "minutes": minutes, "threads": threads, "jobs": jobs, "recipe": "lite-x2",
           "rows": rows, "median_step_s": statistics.median(r["step_s"] for r in rows)}
    atomic_write_bytes(json_path, json.dumps(out, indent=1).encode())
    lines = ["| body (blocks × width × res_scale [h output width], amp) | params | step (s) | steps | val PSNR-Y | "
             "val SSIM-Y |",
             "|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: -r["val_psnr"]):
        lines.append(f"| {r['body']} | {r['params']:,} | {r['step_s']:.3f} | {r['steps']} | {r['val_psnr']:.3f} | "
                     f"{r['val_ssim']:.4f} |")
    atomic_write_bytes(json_path.with_suffix(".md"), ("\n".join(lines) + "\n").encode())
    return out
