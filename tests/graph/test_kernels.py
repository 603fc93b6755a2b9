"""The C kernels' boundary: constants defined once, every tensor checked before its pointer is taken, sizes that
cannot trade places unnoticed, errors as exceptions with the kernel's message; and the fallback when the
kernels are switched off or cannot be built."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ignn_lab.graph.knn_exact as knn_exact
from ignn_lab.graph import kernels
from tests.graph.support import needs_kernels

ROOT = Path(__file__).resolve().parents[2]


def test_shared_constants_come_from_the_header():
    text = Path(kernels.__file__).with_name("_kernels.h").read_text()
    for name in ("ABI_VERSION", "KP_MAX", "LANES"):
        assert f"#define IGNN_{name} {getattr(kernels, name)}" in text
    assert knn_exact.LANES == kernels.LANES
    source = Path(kernels.__file__).with_name("_kernels.c").read_text()
    assert "#define" not in source.replace("#define CHECK", "")  # no second definition in the C source


@needs_kernels
def test_the_loaded_library_reports_the_header_constants():
    lib = kernels.load()
    assert lib.ignn_abi_version() == kernels.ABI_VERSION
    for name in ("ABI_VERSION", "KP_MAX", "LANES"):
        value = kernels._I64()
        assert lib.ignn_constant(name.encode(), value) == 0 and value.value == getattr(kernels, name)
    assert lib.ignn_constant(b"NO_SUCH_CONSTANT", kernels._I64()) != 0


def _refine_args(G=2, th=2, tw=3, ur=4, uc=5, side=(3, 3), D=6, k=2):
    """A small, valid call of refine_window: G tiles of th×tw queries on a 4×8 son grid (one batch item)."""
    gen = torch.Generator().manual_seed(0)
    n1, n2, m1, m2 = 4, 8, 2, 6
    son = torch.randn(n1 * n2, D, generator=gen)
    return dict(
        keys=torch.rand(G, th * tw, ur * uc, generator=gen),
        row_start=torch.zeros(G, th, dtype=torch.int64), col_start=torch.ones(G, tw, dtype=torch.int64),
        queries=torch.randn(G, D, th * tw, generator=gen), son=son,
        union_base=torch.tensor([0, 3], dtype=torch.int64), out_base=torch.tensor([0, 3], dtype=torch.int64),
        son_off=torch.zeros(G, dtype=torch.int64),
        dist=torch.zeros(m1 * m2, k), idx=torch.zeros(m1 * m2, k, dtype=torch.int64),
        union_rows=ur, union_cols=uc, win_rows=side[0], win_cols=side[1], son_cols=n2, out_cols=m2,
        shortlist=k + 1, delta=recompute(D))


def recompute(dim):
    return knn_exact.recompute_delta(dim, torch.float32)


@needs_kernels
def test_a_valid_call_writes_the_exact_window_neighbours():
    """The kernel's result for the small call, against a direct computation of each query's window."""
    args = _refine_args()
    kernels.refine_window(**args)
    son, q = args["son"], args["queries"]
    for g, (ub, ob) in enumerate(zip(args["union_base"].tolist(), args["out_base"].tolist())):
        for r in range(6):
            a, b = divmod(r, 3)
            rows = [ub + (0 + y) * 8 + 1 + x for y in range(3) for x in range(3)]  # row_start 0, col_start 1
            d = ((q[g, :, r].double() - son[rows].double()) ** 2).sum(1)
            order = sorted(range(9), key=lambda i: (float(d[i]), rows[i]))[:2]
            out = ob + a * 6 + b
            assert args["idx"][out].tolist() == [rows[i] for i in order]
            torch.testing.assert_close(args["dist"][out].double(), d[order], rtol=1e-6, atol=0)


@needs_kernels
@pytest.mark.parametrize("name,value,exc,match", [
    ("keys", lambda a: a["keys"].double(), TypeError, "keys must be torch.float32, got torch.float64"),
    ("idx", lambda a: a["idx"].int(), TypeError, "idx must be torch.int64, got torch.int32"),
    ("union_base", lambda a: a["union_base"].int(), TypeError, "union_base must be torch.int64"),
    ("son", lambda a: a["son"].double(), TypeError, "son must be torch.float32"),
    ("queries", lambda a: a["queries"].transpose(1, 2).contiguous().transpose(1, 2), ValueError, "contiguous"),
    ("row_start", lambda a: a["row_start"][:, :1], ValueError, "tiles of 1×3 queries"),
    ("dist", lambda a: a["dist"][:, :1].contiguous(), ValueError, "idx must be 12×1, got 12×2"),
    ("son", lambda a: a["son"].to("meta"), ValueError, "on the CPU"),
    ("son_off", lambda a: a["son_off"].tolist(), TypeError, "son_off must be a torch.Tensor"),
    ("keys", lambda a: a["keys"][0], ValueError, "keys must have 3 dimensions"),
])
def test_every_tensor_is_checked_before_its_pointer_is_taken(name, value, exc, match):
    args = _refine_args()
    args[name] = value(args)
    with pytest.raises(exc, match=match):
        kernels.refine_window(**args)


@needs_kernels
@pytest.mark.parametrize("change,match", [
    ({"union_rows": 5, "union_cols": 4}, "group 0: union_base 0 puts the union outside the son"),  # swapped
    ({"win_rows": 3, "win_cols": 5}, "group 0: col_start 1 puts the window outside the union"),
    ({"son_cols": 4}, "son_cols = 4 is narrower than the union"),
    ({"out_cols": 2}, "out_cols = 2 is narrower than a tile"),
    ({"shortlist": 65}, "shortlist <= 64"),
    ({"shortlist": 1}, "k <= shortlist"),
    ({"delta": 1.5}, "delta"),
])
def test_sizes_that_do_not_fit_the_tensors_are_refused_by_the_kernel(change, match):
    """Sizes travel by name; a swapped or wrong one is caught against the others and the buffers' contents
    before any memory is touched, and comes back as a ValueError carrying the kernel's message."""
    args = _refine_args()
    before = args["dist"].clone()
    args.update(change)
    with pytest.raises(ValueError, match=match):
        kernels.refine_window(**args)
    assert torch.equal(args["dist"], before)  # nothing written


@needs_kernels
@pytest.mark.parametrize("buffer,bad,match", [
    ("union_base", [0, 30], "union_base 30 puts the union outside the son"),
    ("union_base", [0, 5], "union_base 5 puts the union outside the son"),  # wraps past the row's end
    ("out_base", [0, 11], "out_base 11 puts the tile outside the output"),
    ("row_start", [[0, 0], [0, 2]], "row_start 2 puts the window outside the union"),
    ("son_off", [0, 5], "son_off 5"),
])
def test_indices_outside_the_buffers_are_refused_by_the_kernel(buffer, bad, match):
    args = _refine_args()
    args[buffer] = torch.tensor(bad, dtype=torch.int64)
    with pytest.raises(ValueError, match=f"ignn_refine_window: group 1: {match}"):
        kernels.refine_window(**args)


@needs_kernels
def test_bfloat16_rows_and_distances_check_their_inputs():
    son, centre = torch.randn(10, 4), torch.zeros(1, 4)
    out = torch.empty(1, 10, 10, dtype=torch.bfloat16)
    common = dict(union_base=torch.zeros(1, dtype=torch.int64), centre=centre, union_rows=1, union_cols=10,
                  son_cols=10, shrink=1.0, c1=0.01, up=1.01)
    kernels.augment_union_bf16(son, out=out, **common)
    with pytest.raises(TypeError, match="out must be torch.bfloat16"):
        kernels.augment_union_bf16(son, out=out.float(), **common)
    with pytest.raises(ValueError, match="width = 9: needs at least dim \\+ 6 = 10"):
        kernels.augment_union_bf16(son, out=out[..., :9].contiguous(), **common)
    with pytest.raises(ValueError, match="union 2 x 5 does not hold rows = 10|outside the son"):
        kernels.augment_union_bf16(son, out=out, **{**common, "union_rows": 2, "union_cols": 5})
    q = torch.randn(1, 4, 3)
    with pytest.raises(TypeError, match="row_term must be torch.float64"):
        kernels.augment_queries_bf16(q, centre=centre, out=torch.empty(1, 3, 10, dtype=torch.bfloat16),
                                     row_term=torch.empty(1, 3), shrink=1.0, c1=0.01, up=1.01, kappa_up=100.0,
                                     t_split=0.01)
    with pytest.raises(ValueError, match="t_split = 2"):
        kernels.augment_queries_bf16(q, centre=centre, out=torch.empty(1, 3, 10, dtype=torch.bfloat16),
                                     row_term=torch.empty(1, 3, dtype=torch.float64), shrink=1.0, c1=0.01,
                                     up=1.01, kappa_up=100.0, t_split=2.0)
    with pytest.raises(TypeError, match="q must be torch.float32"):
        kernels.sqdist_batch(torch.randn(3, 4, dtype=torch.float64), torch.randn(2, 4))
    with pytest.raises(ValueError, match="s must be 4"):
        kernels.sqdist(torch.randn(4), torch.randn(5))


_PROBE = """
import json, torch
from ignn_lab.graph import cross_scale_knn, kernels
gen = torch.Generator().manual_seed(3)
query, son = torch.randn(1, 4, 40, 36, generator=gen), torch.randn(1, 4, 20, 18, generator=gen)
res = cross_scale_knn(query, son, k=4, window=6)
ref = cross_scale_knn(query, son, k=4, window=6, backend="reference")
print(json.dumps({"status": kernels.status(), "engine": res.engine,
                  "same": torch.equal(res.index, ref.index) and torch.equal(res.distance, ref.distance)}))
"""


def _probe(tmp_path, **env) -> dict:
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "IGNN_LAB_CACHE": str(tmp_path), **env})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_kernels_can_be_switched_off_and_a_failed_build_falls_back(tmp_path):
    """IGNN_LAB_KERNELS=0 and a compiler that fails (read once, in a fresh process): the torch engine runs, with
    the same result, and nothing half-built is left in the cache."""
    off = _probe(tmp_path, IGNN_LAB_KERNELS="0")
    assert "IGNN_LAB_KERNELS=0" in off["status"] and off["engine"] == "torch" and off["same"]
    failed = _probe(tmp_path, CC=shutil.which("false"))  # a "compiler" that always fails
    assert "build failed" in failed["status"] and failed["engine"] == "torch" and failed["same"]
    assert not list(tmp_path.iterdir())
