"""Check the kit's IGNN against the official parity fixtures (``reference/FIXTURES.md``) and write JSON.

``ignn-lab bench parity --json runs/models/parity.json [--reference DIR]``

For each fixture: ``load_official`` in float64 on ``lr/255`` and ``son/255`` with the released and with the
corrected window centring; max |sr − sr_official|/255, whether ``idx_k`` is identical, and the debug tensors'
largest deviations. The release passes with ``released`` centring everywhere, and the corrected centring fails
``x3_windowed`` only (by design).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ignn_lab.data.io import atomic_write_bytes
from ignn_lab.models.official import load_official

FIXTURES = ("x2", "x3", "x4", "x3_windowed")

__all__ = ["FIXTURES", "check_fixture", "run", "summary"]


def check_fixture(path: str | os.PathLike, centering: str = "released") -> dict[str, Any]:
    """Run one fixture file; returns the deviations (see the module docstring)."""
    fx = torch.load(path, map_location="cpu", weights_only=True)
    model = load_official(fx["checkpoint"], fx["scale"], n_feats=fx["n_feats"], n_resblocks=fx["n_resblocks"],
                          window=fx["window_size"], window_centering=centering).double()
    model.gcn.debug = True
    with torch.no_grad():
        sr = model(fx["lr"] / 255, fx["son"] / 255)
    inter, g, k = model.gcn.last_intermediates, fx["graph_scale"], fx["k"]
    b, _, h, w = inter["diff"].shape
    chsum = inter["diff"].view(b, k, -1, h, w).sum(2).repeat_interleave(g, 2).repeat_interleave(g, 3)
    return {"centering": centering, "sr_max_abs_err_01": (sr - fx["sr"] / 255).abs().max().item(),
            "idx_k_equal": bool(torch.equal(model.gcn.last_graph.index, fx["idx_k"])),
            "x1_lr_max_abs_err": (inter["x1_lr"] - fx["x1_lr"]).abs().max().item(),
            "x1_hr_ch0to3_max_abs_err": (inter["x1_hr"][:, :4] - fx["x1_hr_ch0to3"]).abs().max().item(),
            "diff_patch_chsum_max_abs_err": (chsum - fx["diff_patch_chsum"]).abs().max().item(),
            "window": model.gcn.last_graph.window}


def run(reference: str | os.PathLike, json_path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Check every fixture under ``reference`` with both centrings; optionally write JSON."""
    ref = Path(reference)
    out: dict[str, Any] = {"tolerance_sr_01": 1e-7, "fixtures": {}}
    for name in FIXTURES:
        path = ref / f"official_ignn_{name}.pt"
        out["fixtures"][name] = [check_fixture(path, c) for c in ("released", "corrected")]
    ok = all(r[0]["sr_max_abs_err_01"] <= 1e-7 and r[0]["idx_k_equal"] for r in out["fixtures"].values())
    out["released_all_pass"] = ok
    if json_path is not None:
        atomic_write_bytes(json_path, json.dumps(out, indent=2).encode())
    return out


def summary(res: dict[str, Any]) -> str:
    """One line per fixture and centring: the SR deviation and whether the graph indices match."""
    return "\n".join(f"{name:12s} {r['centering']:9s} sr err {r['sr_max_abs_err_01']:.2e}  idx_k equal {r['idx_k_equal']}"
                     for name, rows in res["fixtures"].items() for r in rows)
