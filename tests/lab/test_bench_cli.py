"""``ignn-lab bench …``: every benchmark and its options reach the library; bad input is one line, exit code 2;
``bench compare`` (before/after in one run) and its verdict."""

from __future__ import annotations

import json
import subprocess

import pytest

from ignn_lab.cli import build_parser, main
from ignn_lab.lab import bench_compare


@pytest.mark.parametrize("argv,expected", [
    (["bench", "knn", "--json", "k.json", "--quick", "--cases", "small-x2", "--embeddings", "pixel", "--no-memory",
      "--data-root", "D"], {"cases": ["small-x2"], "embeddings": ["pixel"], "no_memory": True, "data_root": "D"}),
    (["bench", "models", "--json", "m.json", "--no-paper", "--sizes", "64,96", "--scales", "2", "--threads", "1"],
     {"no_paper": True, "sizes": [64, 96], "scales": [2], "threads": 1}),
    (["bench", "memory", "--json", "x.json", "--size", "512", "--budget-gb", "2.5", "--tile", "128"],
     {"size": 512, "budget_gb": 2.5, "tile": 128, "model": "ignn"}),
    (["bench", "eval", "--json", "e.json", "--quick", "--no-full"], {"quick": True, "no_full": True}),
    (["bench", "sizing", "--json", "s.json", "--sweep", "32x16,44x16", "--threads", "1"],
     {"sweep": "32x16,44x16", "threads": 1}),
    (["bench", "parity", "--json", "p.json", "--reference", "R"], {"reference": "R"}),
    (["bench", "sweep", "--json", "w.json", "--bodies", "12x32x1", "--minutes", "1", "--jobs", "1",
      "--data-root", "D"], {"bodies": "12x32x1", "minutes": 1.0, "jobs": 1, "data_root": "D"}),
    (["bench", "compare", "--base", "main", "--quick", "--rounds", "3"], {"base": "main", "quick": True, "rounds": 3}),
    (["bench", "train", "--json", "t.json", "--quick", "--variants", "bf16,bf16-contiguous", "--threads", "1"],
     {"quick": True, "variants": "bf16,bf16-contiguous", "threads": 1}),
])
def test_every_benchmark_option_is_on_the_command_line(argv, expected):
    a = build_parser().parse_args(argv)
    assert a.what == argv[1] and a.func.__name__ == "cmd_bench"
    assert {k: getattr(a, k) for k in expected} == expected


def test_bench_errors_are_one_line(tmp_path, capsys):
    assert main(["bench", "knn", "--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "ignn-lab bench: error: bench knn needs --json OUT (or --table RESULT.json to print an existing result)"
    assert main(["bench", "compare", "--base", "no-such-revision-xyz"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'no-such-revision-xyz' is not a revision" in err[0]
    assert main(["bench", "knn", "--json", str(tmp_path / "k.json"), "--quick", "--cases", "nope"]) == 2
    assert "no case among ['nope']" in capsys.readouterr().err


def test_bench_knn_table_prints_an_existing_result(tmp_path, capsys):
    result = {"machine": {"cpu": "X", "cpu_count": 2, "torch_threads": 2, "loadavg_before": [1, 1, 1],
                          "loadavg_after": [2, 2, 2], "gemm_gflops_before": 1, "gemm_gflops_after": 2,
                          "knn_kernels": "C kernels"},
              "configs": [{"case": "c", "batch": 1, "lr_hw": [8, 8], "dim": 27, "window": 30,
                           "times": {"naive": {"median_s": 1.0}, "torch": {"median_s": 0.5}, "auto": {"median_s": 0.25}},
                           "torch_engine": {"engine": "c-float32"}, "auto_picked": "torch",
                           "speedup_vs_naive": {"auto": 4.0}}]}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(result))
    assert main(["bench", "knn", "--table", str(path)]) == 0
    out = capsys.readouterr().out
    assert "| c | 1×8×8 | 27 | 30 | 1.000 | – | 0.500 (c-float32) | – | 0.250 (torch) | 4.0× |" in out


def _runs(base, head, base_hash="a", head_hash="a"):
    return {"base": {"runs": base, "hash": base_hash}, "head": {"runs": head, "hash": head_hash}}


def test_compare_verdict():
    """Same bits and the head's median within the larger run-to-run spread: ok; outside it: slower; other bits:
    never ok; an error in either tree: never ok."""
    row = {"id": "r"}
    ok = bench_compare._summarise(row, _runs([1.0, 1.2, 1.1], [1.25, 1.15, 1.3]))
    assert ok["identical"] and ok["ok"] and ok["spread_s"] == pytest.approx(0.2)
    slow = bench_compare._summarise(row, _runs([1.0, 1.01, 1.02], [1.5, 1.51, 1.52]))
    assert slow["identical"] and not slow["ok"]
    differ = bench_compare._summarise(row, _runs([1.0, 1.1], [0.5, 0.6], head_hash="b"))
    assert not differ["identical"] and not differ["ok"]
    failed = bench_compare._summarise(row, {"base": {"runs": [], "hash": None, "error": "boom"},
                                            "head": {"runs": [1.0, 1.0], "hash": "a"}})
    assert not failed["ok"] and failed["base"]["error"] == "boom"


@pytest.mark.slow
def test_compare_against_this_checkout_is_identical(tmp_path):
    """The quick comparison of HEAD with this checkout: every row runs in both trees with the same bits, and the
    temporary worktree is gone afterwards."""
    root = bench_compare.repo_root()
    before = subprocess.run(["git", "-C", str(root), "worktree", "list"], capture_output=True, text=True).stdout
    report = bench_compare.run("HEAD", tmp_path / "c.json", quick=True, progress=False)
    assert report["all_identical"] and len(report["rows"]) == 10
    assert all(len(r["base"]["runs_s"]) == len(r["head"]["runs_s"]) == 2 for r in report["rows"])
    assert json.loads((tmp_path / "c.json").read_text())["rows"] == report["rows"]
    assert (tmp_path / "c.md").read_text().count("| knn ") == 8
    after = subprocess.run(["git", "-C", str(root), "worktree", "list"], capture_output=True, text=True).stdout
    assert after == before


def test_bench_train_times_both_models_per_variant_on_the_threads_asked(tmp_path, capsys):
    import torch

    from ignn_lab.lab import bench_train

    before = torch.get_num_threads()
    res = bench_train.run(tmp_path / "t.json", variants=("fp32", "bf16-contiguous"), repeats=1, threads=1)
    assert torch.get_num_threads() == before and res["torch_threads"] == 1
    for v in ("fp32", "bf16-contiguous"):
        med = res["variants"][v]["median_step_s"]
        assert set(med) == {"edsr-lite", "ignn-lite"} and all(t > 0 for t in med.values())
        assert res["variants"][v]["ratio_ignn_over_edsr"] == med["ignn-lite"] / med["edsr-lite"]
    assert res["variants"]["fp32"]["speedup_vs_fp32"] == {"edsr-lite": 1.0, "ignn-lite": 1.0}
    assert json.loads((tmp_path / "t.json").read_text())["variants"].keys() == {"fp32", "bf16-contiguous"}
    assert "| bf16-contiguous |" in (tmp_path / "t.md").read_text()
    assert main(["bench", "train", "--json", str(tmp_path / "u.json"), "--variants", "fp16"]) == 2
    assert "unknown variant 'fp16'" in capsys.readouterr().err
