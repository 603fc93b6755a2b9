"""Time one training step of every lite ablation variant, to size ``LITE_BUDGET`` (docs/lab.md).

One step = forward (with the config's autocast), L1, backward, Adam, on a 16 x 48² batch, on ``--threads``
threads; the variants alternate in rounds so that a change of machine load touches them all alike. Each step is
timed in CPU seconds of this process (what a run costs when it has its cores to itself; other processes on the
machine change it little) and in wall seconds. Writes JSON (medians per variant, every sample, the CPU ratios
to ``lite-x2``) and prints the ratios.

Run: python tools/ablation_step_times.py --json runs/bench/ablation_steps.json [--rounds 5 --threads 1]
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", required=True)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    from ignn_lab.lab.tables import lite_variant_runs
    from ignn_lab.lab.training import run_config
    from ignn_lab.models import build

    torch.set_num_threads(a.threads)
    nets = {}
    for name, v in lite_variant_runs().items():
        if v["overrides"]:  # another seed of a config already timed
            continue
        cfg = run_config(v["config"])
        net = build(cfg.model, cfg.scale, **cfg.model_overrides).train()
        nets[name] = (net, torch.optim.Adam(net.parameters(), lr=1e-4), cfg)
    g = torch.Generator().manual_seed(0)
    lr, hr = torch.rand(16, 3, 48, 48, generator=g), torch.rand(16, 3, 96, 96, generator=g)

    def step(net, opt, cfg) -> tuple[float, float]:
        t, c = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16) if cfg.amp == "bf16" else nullcontext():
            sr = net(lr)
        F.l1_loss(sr.float(), hr).backward()
        opt.step()
        return time.process_time() - c, time.perf_counter() - t

    for args in nets.values():
        step(*args)  # warm-up
    samples = {name: [] for name in nets}
    for r in range(a.rounds):
        for name, args in nets.items():
            samples[name].append(step(*args))
        print(f"round {r + 1}/{a.rounds}", file=sys.stderr, flush=True)
    median = {name: statistics.median(cpu for cpu, _ in v) for name, v in samples.items()}
    wall = {name: statistics.median(w for _, w in v) for name, v in samples.items()}
    ratio = {name: m / median["lite-x2"] for name, m in median.items()}
    record = {"median_cpu_s": median, "median_wall_s": wall, "ratio_to_lite_x2": ratio,
              "samples_cpu_wall_s": samples, "threads": a.threads, "rounds": a.rounds,
              "cpu_count": os.cpu_count(), "load_average": os.getloadavg(), "torch": torch.__version__,
              "platform": platform.platform()}
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(record, indent=1))
    for name in sorted(ratio, key=ratio.get):
        print(f"{name:22s} {median[name]:6.3f} CPU s  x{ratio[name]:.2f}  ({wall[name]:.3f} s wall)")
    print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
