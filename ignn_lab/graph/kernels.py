"""Fused C kernels for windowed search on CPU, compiled on first use; the pure-torch path runs without them.

``_kernels.c`` (next to this file) holds everything of a windowed search that is neither a GEMM nor cheap
in torch: selecting each query's shortlist inside its window, exact re-ranking, certification and the exact
rescan of uncertain rows, written straight into the result; and the bfloat16 rows that feed the GEMM of
:mod:`~ignn_lab.graph.knn_bf16`. It is compiled once per machine with the system C compiler (``$CC``,
else ``cc``/``gcc``/``clang``) into ``$IGNN_LAB_CACHE`` (default ``~/.cache/ignn-lab``), keyed by the source,
the flags and the CPU, and loaded with :mod:`ctypes` (calls release the GIL, so worker threads run them in
parallel). No compiler, a failed build or ``IGNN_LAB_KERNELS=0``: :func:`load` returns None and searches
use the torch path, with identical results. :func:`status` says which, and why.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["load", "status", "refine_window", "sqdist_batch", "augment_union_bf16", "augment_queries_bf16", "sqdist",
           "KP_MAX", "ABI_VERSION"]

ABI_VERSION = 3
KP_MAX = 64  # shortlists longer than this use the torch path
_SOURCE = Path(__file__).with_name("_kernels.c")
_FLAGS = ["-O3", "-ffp-contract=off", "-fno-fast-math", "-shared", "-fPIC", "-std=c99"]
_NATIVE = "-march=native"  # dropped if the compiler refuses it (some clang builds)
_LOCK = threading.Lock()
_STATE: dict = {}

_P, _I64, _I32, _F64 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_double
_SIGNATURES = {
    "ignn_abi_version": ([], ctypes.c_int),
    "ignn_sqdist": ([_P, _P, _I64], ctypes.c_float),
    "ignn_sqdist_batch": ([_P, _I64, _I64, _P, _I64, _I64, _I64, _I64, _I64, _P], None),
    "ignn_refine_window": ([_P, _I32, _I64, _I64, _I64, _I64, _I64, _P, _P, _I64, _I64, _P, _F64, _F64, _F64, _P,
                            _I64, _P, _I64, _P, _I64, _I64, _F64, _P, _P, _I64, _P, _P], _I64),
    "ignn_augment_union_bf16": ([_P, _I64, _I64, _I64, _I64, _I64, _P, _P, _F64, _F64, _F64, _P, _I64], None),
    "ignn_augment_queries_bf16": ([_P, _I64, _I64, _I64, _P, _F64, _F64, _F64, _F64, _F64, _P, _I64, _P],
                                  None),
}


def _cache_dir() -> Path:
    root = os.environ.get("IGNN_LAB_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "ignn-lab"


def _cpu_key() -> str:
    """What ``-march=native`` depends on: the CPU's model and feature flags (a shared home on a cluster
    must not hand one machine's build to another)."""
    text = platform.machine() + platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags", "Features", "CPU part")):
                text += line
                if line.startswith(("flags", "Features")):
                    break
    except OSError:
        pass
    return text


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _build(cc: str) -> Path:
    """Compile ``_kernels.c`` into the cache (atomically: a temporary file, then a rename)."""
    source = _SOURCE.read_bytes()
    key = hashlib.sha256(source + " ".join([cc, _NATIVE, *_FLAGS]).encode() + _cpu_key().encode()).hexdigest()[:16]
    out = _cache_dir() / f"kernels-{key}{'.dll' if os.name == 'nt' else '.so'}"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".kernels-", suffix=".so")
    os.close(fd)
    try:
        for flags in ([_NATIVE, *_FLAGS], _FLAGS):
            cmd = [cc, *flags, str(_SOURCE), "-o", tmp, "-lm"]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            if not done.returncode:
                break
        else:
            raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip()[-500:]}")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def load() -> ctypes.CDLL | None:
    """The compiled kernels, building them on first use; None when unavailable (see :func:`status`)."""
    with _LOCK:
        if "lib" in _STATE:
            return _STATE["lib"]
        lib, why = None, ""
        if os.environ.get("IGNN_LAB_KERNELS", "1") == "0":
            why = "disabled by IGNN_LAB_KERNELS=0"
        elif (cc := _compiler()) is None:
            why = "no C compiler found (set CC, or install gcc/clang)"
        else:
            try:
                lib = ctypes.CDLL(str(_build(cc)))
                for name, (args, res) in _SIGNATURES.items():
                    fn = getattr(lib, name)
                    fn.argtypes, fn.restype = args, res
                if lib.ignn_abi_version() != ABI_VERSION:
                    raise RuntimeError("stale kernel build (ABI version mismatch)")
                why = f"compiled with {cc}"
            except (OSError, RuntimeError, subprocess.SubprocessError, AttributeError) as err:
                lib, why = None, f"build failed: {err}"
        _STATE["lib"], _STATE["why"] = lib, why
        return lib


def status() -> str:
    """Whether the kernels are in use, and why (for benchmark records and error reports)."""
    lib = load()
    return ("C kernels: " if lib else "torch path (no C kernels): ") + _STATE["why"]


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _check(*tensors: Tensor) -> None:
    for t in tensors:
        if t.device.type != "cpu" or not t.is_contiguous():
            raise ValueError("C kernels need contiguous CPU tensors")


def sqdist(q: Tensor, s: Tensor) -> float:
    """The kernel's exact squared distance of two float32 vectors (for tests against ``exact_sqdist``)."""
    lib = load()
    _check(q, s)
    return lib.ignn_sqdist(_ptr(q), _ptr(s), q.numel())


def sqdist_batch(q: Tensor, cand: Tensor) -> Tensor:
    """:func:`~ignn_lab.graph.knn_exact.exact_sqdist` of float32 CPU tensors, by the kernel (same bits).

    Args:
        q: ...×D. cand: ...×K×D, broadcast against ``q.unsqueeze(-2)``.
    """
    lib = load()
    D = q.shape[-1]
    shape = torch.broadcast_shapes(q.shape[:-1] + (1,), cand.shape[:-1])
    qe = (q if q.stride(-1) == 1 else q.contiguous()).unsqueeze(-2).expand(*shape, D)
    ce = (cand if cand.stride(-1) == 1 else cand.contiguous()).expand(*shape, D)
    out = torch.empty(shape, dtype=torch.float32)

    def run(qv: Tensor, cv: Tensor, ov: Tensor) -> None:  # qv, cv: L×K×D views; ov: L×K contiguous
        if qv.dim() == 2:
            qv, cv, ov = qv.unsqueeze(0), cv.unsqueeze(0), ov.unsqueeze(0)
        if qv.dim() > 3:
            merged = []
            for t in (qv, cv):  # dims 0 and 1 merge when the stride pattern allows
                if t.shape[1] == 1 or t.stride(0) == t.stride(1) * t.shape[1]:
                    merged.append(t.as_strided((t.shape[0] * t.shape[1], *t.shape[2:]),
                                               (t.stride(1) if t.shape[1] > 1 else t.stride(0), *t.stride()[2:])))
                else:
                    merged = None
                    break
            if merged is None or qv.shape[0] == 1:
                for i in range(qv.shape[0]):
                    run(qv[i], cv[i], ov[i])
                return
            run(merged[0], merged[1], ov.reshape(-1, *ov.shape[2:]))
            return
        R, K = qv.shape[0], qv.shape[1]
        lib.ignn_sqdist_batch(_ptr(qv), qv.stride(0), qv.stride(1), _ptr(cv), cv.stride(0), cv.stride(1), R, K, D,
                              _ptr(ov))

    run(qe, ce, out)
    return out


def refine_window(keys: Tensor, rrel: Tensor, crel: Tensor, side: tuple[int, int], q: Tensor, son: Tensor, n2: int,
                  union_base: Tensor, k: int, kp: int, delta: float, dist: Tensor, idx: Tensor, m2: int,
                  out_base: Tensor, son_off: Tensor, *, union: tuple[int, int],
                  bounds: tuple[Tensor, float, float, float] | None = None) -> int:
    """Shortlist, re-rank, certify and write one chunk's results (``ignn_refine_window`` in ``_kernels.c``).

    Args:
        keys: G×R×(ur·uc) float32 lower bounds, or bfloat16 keys with ``bounds``.
        rrel, crel: G×th, G×tw int64 window starts inside each tile's union. side: window (rows, cols).
        q: G×D×R float32 queries (as columns). son: (B·N)×D float32. n2: son-grid width.
        union_base: G int64, son row of each union's corner. k, kp: neighbours, shortlist length.
        delta: relative error bound of the exact distance. dist, idx: (B·M)×k outputs.
        m2: query-grid width. out_base: G int64 output row of each tile's first query.
        son_off: G int64 subtracted from son rows (the batch item's first row).
        union: (ur, uc). bounds: (row_term G×R float64, scale, rel, slack) for bfloat16 keys.

    Returns:
        Rows that needed the exact rescan.

    Raises:
        MemoryError: the kernel could not allocate its row buffer.
    """
    lib = load()
    G, R, _ = keys.shape
    th, tw = rrel.shape[1], crel.shape[1]
    row_term, scale, rel, slack = bounds if bounds is not None else (None, 1.0, 0.0, 0.0)
    _check(keys, rrel, crel, q, son, union_base, dist, idx, out_base, son_off)
    rescans = lib.ignn_refine_window(_ptr(keys), int(keys.dtype == torch.bfloat16), G, th, tw, union[0],
                                     union[1], _ptr(rrel), _ptr(crel), side[0], side[1], _ptr(row_term), scale, rel, slack,
                                     _ptr(q), q.shape[1], _ptr(son), n2, _ptr(union_base), k, kp, delta,
                                     _ptr(dist), _ptr(idx), m2, _ptr(out_base), _ptr(son_off))
    if rescans < 0:
        raise MemoryError("ignn_refine_window could not allocate its row buffer")
    return rescans


def augment_union_bf16(son: Tensor, n2: int, union: tuple[int, int], union_base: Tensor, centre: Tensor,
                       shrink: float, c1: float, up: float, out: Tensor) -> None:
    """Fill ``out`` (G×(ur·uc)×W bfloat16) with the candidate rows of :mod:`~ignn_lab.graph.knn_bf16`."""
    lib = load()
    _check(son, union_base, centre, out)
    lib.ignn_augment_union_bf16(_ptr(son), son.shape[-1], n2, out.shape[0], union[0], union[1],
                                _ptr(union_base), _ptr(centre), shrink, c1, up, _ptr(out), out.shape[-1])


def augment_queries_bf16(q_cols: Tensor, centre: Tensor, shrink: float, c1: float, up: float, kappa_up: float,
                         t_split: float, out: Tensor, row_term: Tensor) -> None:
    """Fill ``out`` (G×R×W bfloat16) with the query rows and ``row_term`` (G×R float64) with ``e²/t``."""
    lib = load()
    _check(q_cols, centre, out, row_term)
    G, D, R = q_cols.shape
    lib.ignn_augment_queries_bf16(_ptr(q_cols), D, G, R, _ptr(centre), shrink, c1, up, kappa_up, t_split,
                                  _ptr(out), out.shape[-1], _ptr(row_term))
