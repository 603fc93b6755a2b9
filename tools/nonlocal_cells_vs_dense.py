"""Score a region-level non-local checkpoint as trained and with dense attention, on the same sets, in one process.

The lite non-local variant attends within 48² cells at test time (its training patch; docs/lab.md). This says
what that choice costs or gains against dense attention over the whole image, and how much time each takes
(CPU seconds of this process, the two runs alternating per set so that machine load touches both alike). Dense
attention costs HW² per image in time and, on CPU, in memory: a 256×256 LR image (Set5) was killed for memory
on this 24 GB machine, so give it small folders or a machine with more memory. Writes JSON (PSNR-Y /
SSIM-Y per set for both, the differences, the seconds and their ratio) and prints it.

Run: python tools/nonlocal_cells_vs_dense.py runs/lite-ablation/lite-x2-nonlocal/best.pt \
         --json runs/bench/nonlocal_cells_vs_dense.json [--sets Set5,Set14,B100 --threads 1]
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--json", required=True)
    p.add_argument("--sets", default="Set5,Set14,B100")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    from ignn_lab.engine.evaluate import evaluate
    from ignn_lab.engine.provenance import git_commit
    from ignn_lab.models.checkpoint import load

    torch.set_num_threads(a.threads)
    region = getattr(load(a.checkpoint).config, "nonlocal_region", None)
    if region is None:
        raise SystemExit(f"{a.checkpoint} attends densely already (nonlocal_region is None): nothing to compare")
    runs = {"cells": {}, "dense": {"nonlocal_region": None}}
    out = {"checkpoint": str(a.checkpoint), "region": region, "threads": a.threads, "sets": {},
           "machine": platform.processor() or platform.machine(), "commit": git_commit()}
    for name in a.sets.split(","):
        row = {}
        for how, switches in runs.items():
            t = time.process_time()
            res = evaluate(a.checkpoint, [name], [2], progress=False, workers=1, **switches)
            cell = res["summary"][0]
            row[how] = {"psnr": cell["psnr"], "ssim": cell["ssim"], "cpu_s": time.process_time() - t}
        row["delta_psnr_dense_minus_cells"] = row["dense"]["psnr"] - row["cells"]["psnr"]
        row["cpu_ratio_dense_over_cells"] = row["dense"]["cpu_s"] / row["cells"]["cpu_s"]
        out["sets"][name] = row
        print(name, json.dumps(row), flush=True)
    path = Path(a.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=2) + "\n")
    os.replace(tmp, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
