"""``ignn-lab bench explorer``: what it writes (no timing is asserted: the numbers depend on the machine)."""

import json

import numpy as np
import pytest

from ignn_lab.cli import build_parser, main
from ignn_lab.lab.bench_explorer import TARGETS, run


def _check(report: dict, path) -> None:
    saved = json.loads(path.read_text())
    assert saved["build"] == report["build"] and saved["lr_size"] == [256, 256]
    assert path.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    md = path.with_suffix(".md").read_text()
    assert "graph, new setting: vgg-random" in md and "click: select" in md
    for key in ("image_s", "pixel_graph_s", "vgg_random_graph_s"):
        assert report["build"][key.replace("_s", "_median_s")] == np.median(report["build"][key])
    for clicks in (report["clicks"]["select"], report["clicks_one_thread"]["select"]):
        assert clicks["n"] == len(clicks["samples_s"]) == 10
        assert abs(clicks["median_s"] - np.median(clicks["samples_s"])) < 1e-5  # samples are rounded to 10 µs
        assert clicks["median_s"] <= clicks["p95_s"] <= clicks["max_s"]
    click = report["clicks"]["widget"] or report["clicks"]["select"]
    assert report["meets"]["click_median"] == (click["median_s"] < TARGETS["click_s"])
    pixel = report["build"]["pixel_graph_median_s"]
    assert report["meets"]["pixel_graph"] == (pixel < TARGETS["pixel_graph_s"])


def test_quick_bench_without_model(tmp_path):
    path = tmp_path / "explorer.json"
    report = run(path, quick=True, model=False)
    _check(report, path)
    assert "model" not in report
    assert report["settings"]["embedding"] == "pixel" and report["settings"]["k"] == 5


def test_the_cli_knows_it():
    args = build_parser().parse_args(["bench", "explorer", "--json", "x.json", "--quick"])
    assert args.what == "explorer" and args.quick


@pytest.mark.slow
def test_quick_bench_from_the_cli_with_a_model(tmp_path, capsys):
    path = tmp_path / "b" / "explorer.json"
    assert main(["bench", "explorer", "--quick", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    _check(report, path)
    m = report["model"]
    assert len(m["forward_s"]) == 1 and m["clicks_select"]["n"] == 10 and "ignn-lite" in m["model"]
    assert "model stage" in path.with_suffix(".md").read_text()
