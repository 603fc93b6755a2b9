"""The kNN benchmark (quick mode), its naive reference, and the memory bounds measured in subprocesses."""

import json

import pytest
import torch

from ignn_lab._optional import available
from ignn_lab.graph import cross_scale_knn
from ignn_lab.lab.bench_knn import measure_memory, naive_knn, run


@pytest.mark.parametrize("window", [5, None])
def test_naive_reference_matches_exact_search(window):
    gen = torch.Generator().manual_seed(0)
    query = torch.randn(2, 4, 30, 33, generator=gen, dtype=torch.float64)
    son = torch.randn(2, 4, 15, 16, generator=gen, dtype=torch.float64)
    dist, idx = naive_knn(query, son, k=5, window=window, graph_scale=2)
    ref = cross_scale_knn(query, son, k=5, window=window, graph_scale=2, backend="reference")
    assert torch.equal(idx, ref.index)
    offset = 1e-5 if window is not None else 0.0
    torch.testing.assert_close(dist, ref.distance + offset, rtol=1e-9, atol=1e-9)


def test_quick_benchmark_writes_json_and_chart(tmp_path):
    out = tmp_path / "knn.json"
    result = run(out, quick=True)
    on_disk = json.loads(out.read_text())
    assert on_disk["quick"] is True and on_disk["configs"] == json.loads(json.dumps(result["configs"]))
    machine = on_disk["machine"]
    assert machine["cpu_count"] >= 1 and machine["torch_threads"] >= 1 and len(machine["loadavg_before"]) == 3
    backends = {"naive", "torch", "auto"} | ({"faiss"} if available("faiss") else set())
    for row in on_disk["configs"]:
        assert backends <= set(row["times"])
        for t in row["times"].values():
            assert t["median_s"] > 0 and len(t["runs_s"]) >= 1
        assert set(row["speedup_vs_naive"]) == set(row["times"]) - {"naive"}
        assert row["auto_picked"] in ("torch", "faiss")
        assert row["naive_index_agreement"] > 0.98  # float32 full-matrix ranking vs exact: near-ties only
        assert row["torch_engine"]["engine"] in ("torch", "c-float32", "c-bf16")
        if "torch-pure" in row["times"]:  # with the C kernels: the engines agree bit for bit
            assert row["pure_torch_identical"] is True
    assert machine["knn_kernels"]
    (mem,) = on_disk["memory"]
    assert "error" not in mem and mem["peak_rss_mb"] > 0 and mem["search_peak_rss_mb"] > 0
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_windowed_search_memory_is_bounded_by_tiles():
    """256² LR, 576-d: the M×N float32 matrix would be 256 MiB; the windowed search stays far below it."""
    spec = {"case": "random", "size": 256, "embedding": "random", "window": 30, "backend": "torch"}
    m = measure_memory(spec, timeout=300)
    assert "error" not in m, m.get("error")
    m_n_bytes_mb = (128 * 128) * (64 * 64) * 4 / 2**20
    assert m["search_increase_mb"] < m_n_bytes_mb / 2, m


@pytest.mark.slow
def test_windowed_search_of_1024_lr_stays_under_2_gb():
    """Issue 3: windowed search of a 1024×1024 LR image with 576-d patches, peak RSS of the whole process."""
    spec = {"case": "random", "size": 1024, "embedding": "random", "window": 30, "backend": "auto"}
    m = measure_memory(spec, timeout=1200)
    assert "error" not in m, m.get("error")
    assert m["peak_rss_mb"] < 2048, m
