"""``bench_models.run(quick=True)``: a real (small) run in subprocesses, its JSON and chart."""

from __future__ import annotations

import json

from ignn_lab.lab import bench_models


def test_quick_run_writes_json_and_chart(tmp_path):
    path = tmp_path / "models.json"
    rep = bench_models.run(path, quick=True, progress=False)
    assert json.loads(path.read_text()) == json.loads(json.dumps(rep))
    assert path.with_suffix(".png").stat().st_size > 1000
    res = {r["model"]: r for r in rep["results"]}
    assert set(res) == {"edsr-lite", "ignn-lite"} and not any("error" in r for r in res.values())
    e, g = res["edsr-lite"], res["ignn-lite"]
    # parameters: the child counts what the registry builds
    from ignn_lab.models import build

    net = build("edsr-lite", 2)
    assert e["params"] == sum(p.numel() for p in net.parameters())
    # FLOPs: EDSR's convolutions counted by hand (2·MACs): head 3→C, 2R+1 body convs C→C, upsampler C→4·Ch at LR
    # (Ch = hr_feats, C by default), tail Ch→3 at HR; the MeanShift 1×1 convs 3→3 at LR and HR
    c, r, h = net.config.n_feats, net.config.n_resblocks, 48
    ch = net.config.hr_feats or c
    macs = (h * h * 9 * (3 * c + (2 * r + 1) * c * c + c * 4 * ch) + (2 * h) ** 2 * 9 * ch * 3
            + 9 * (h * h + 4 * h * h))
    assert e["flops"] == 2 * macs
    assert g["flops"] > e["flops"] and "gcn" in g["flops_by_module"]
    # time split and memory are recorded
    shares = g["graph_share"]
    assert 0 < shares["graph_construction"] < 1 and 0 < shares["aggregation"] < 1
    assert 0 < shares["graph_total"] < 1 and "graph_share" not in e
    assert g["peak_rss_mb"] >= g["rss_after_build_mb"] > 50
    assert rep["ratios"][0]["time_ratio"] == g["seconds"] / e["seconds"]
    assert len(rep["loadavg_before"]) == 3 and rep["machine"]["cpu_count"] >= 1
