"""What a search computes depends only on its arguments: no module-level state in ignn_lab.graph steers it.

Every module of the package is imported, and every module-level name is fingerprinted (values of plain data,
contents of containers and tensors, identity of everything else). Searches with every engine, selection,
shortlist margin, tile and backend must then leave the fingerprints unchanged and return the same bits, and a
search repeated after all of them must return what it returned first.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import torch

import ignn_lab.graph
from ignn_lab.graph import cross_scale_knn
from tests.graph.support import BACKENDS, HAS_FAISS, HAS_KERNELS, c_engines, periodic_son

GRAPH = Path(ignn_lab.graph.__file__).parent


def _modules() -> list:
    return [importlib.import_module(f"ignn_lab.graph.{m.name}") for m in pkgutil.iter_modules([str(GRAPH)])]


def _fingerprint(value, depth: int = 0):
    if isinstance(value, (bool, int, float, complex, str, bytes, type(None))):
        return value
    if isinstance(value, torch.Tensor):
        return ("tensor", value.dtype, tuple(value.shape), value.detach().cpu().clone())
    if depth < 4 and isinstance(value, (tuple, list, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return (type(value).__name__, tuple(_fingerprint(v, depth + 1) for v in items))
    if depth < 4 and isinstance(value, dict):
        return ("dict", tuple((repr(k), _fingerprint(v, depth + 1)) for k, v in value.items()))
    return ("object", type(value).__name__, id(value))


def _same(a, b) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple):
        if a[:1] == ("tensor",) and b[:1] == ("tensor",):
            return a[1:3] == b[1:3] and torch.equal(a[3], b[3])
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _snapshot() -> dict:
    return {(m.__name__, name): _fingerprint(v) for m in _modules() for name, v in vars(m).items()
            if not name.startswith("__")}


def _configurations() -> list[dict]:
    configs = [dict(backend=b) for b in BACKENDS]
    configs += [dict(backend="torch", engine="torch", selection=s) for s in ["topk"] + (["heap"] if HAS_FAISS else [])]
    configs += [dict(backend="torch", engine="torch", shortlist_extra=0, tile=(3, 5))]
    if HAS_KERNELS:
        configs += [dict(backend="torch", engine=e, shortlist_extra=x) for e in c_engines() for x in (0, 7)]
    return configs


def test_searches_leave_module_state_alone_and_depend_only_on_their_arguments():
    gen = torch.Generator().manual_seed(31)
    query = torch.randn(2, 6, 34, 38, generator=gen)
    son = periodic_son(2, 6, 17, 19, 4, gen)  # exact ties: every engine must settle them the same way
    for window in (5, None):  # warm every cache a search may fill once (kernel build, bfloat16 check, pool)
        for config in _configurations():
            cross_scale_knn(query, son, k=4, window=window, **config)
    before = _snapshot()

    def unchanged(after: dict) -> list:
        assert before.keys() == after.keys()
        return [key for key in before if not _same(before[key], after[key])]

    for window in (5, None):
        first = cross_scale_knn(query, son, k=4, window=window, backend="reference")
        for config in _configurations():
            res = cross_scale_knn(query, son, k=4, window=window, **config)
            assert torch.equal(res.index, first.index) and torch.equal(res.distance, first.distance), config
            if "engine" in config:
                assert res.engine == config["engine"]
            changed = unchanged(_snapshot())  # after every search: a "last search" record would differ here
            assert not changed, f"module-level state changed by a search with {config}: {changed}"
        again = cross_scale_knn(query, son, k=4, window=window, backend="reference")
        assert torch.equal(again.index, first.index) and torch.equal(again.distance, first.distance)


def test_no_module_rebinds_its_globals_at_run_time():
    """``global`` statements are the way a function rebinds module state; only the worker pool may (it is
    replaced by a larger one when a caller has more threads, which changes no result)."""
    found = []
    for path in sorted(GRAPH.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Global):
                found += [f"{path.name}:{name}" for name in node.names]
    assert found == ["workers.py:_POOL"]
