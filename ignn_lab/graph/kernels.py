"""Fused C kernels for windowed search on CPU, compiled on first use; the pure-torch path runs without them.

``_kernels.c`` (next to this file) holds everything of a windowed search that is neither a GEMM nor cheap
in torch: selecting each query's shortlist inside its window, exact re-ranking, certification and the exact
rescan of uncertain rows, written straight into the result; and the bfloat16 rows that feed the GEMM of
:mod:`~ignn_lab.graph.knn_bf16`. It is compiled once per machine with the system C compiler (``$CC``,
else ``cc``/``gcc``/``clang``) into ``$IGNN_LAB_CACHE`` (default ``~/.cache/ignn-lab``), keyed by the source,
the header, the flags and the CPU, and loaded with :mod:`ctypes`. No compiler or a failed build: :func:`load`
returns None and searches use the torch path, with identical results; :func:`status` says which, and why.

The boundary is typed. ctypes rather than ``torch.utils.cpp_extension``: the library has no Python or torch
dependency, so it builds in about a second with any C compiler (no torch headers, no ninja, no rebuild per
torch version), and ctypes releases the GIL around each call, which the worker threads of a windowed search
rely on. In exchange the checks a C++ extension would get from its types are made here: every tensor is
checked for dtype, shape, contiguity and device before its pointer is taken; sizes travel in
:class:`ctypes.Structure` s with named fields, most of them read off the tensors' shapes; the kernels check
every size and every index range again before touching memory, and report errors as a status code and a
message, raised here as ``ValueError`` / ``MemoryError``. The constants both languages need (ABI version,
shortlist limit, summation lanes) are defined once, in ``_kernels.h``: this module reads them from there and
checks that the loaded library reports the same.

``IGNN_LAB_KERNELS=0`` in the environment, read once when the kernels are first needed, keeps the library from
being built or loaded. It is an application-level kill switch for a machine whose compiler or CPU misbehaves:
it changes only speed, never a result (every engine returns the same bits).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["ABI_VERSION", "KP_MAX", "LANES", "augment_queries_bf16", "augment_union_bf16", "load", "refine_window",
           "sqdist", "sqdist_batch", "status"]

_SOURCE = Path(__file__).with_name("_kernels.c")
_HEADER = Path(__file__).with_name("_kernels.h")


def _header_constants(text: str) -> dict[str, int]:
    """The ``#define IGNN_NAME value`` integer constants of ``_kernels.h``."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^#define IGNN_(\w+)\s+(-?\d+)\b", text, re.M)}


_CONSTANTS = _header_constants(_HEADER.read_text())
#: Version of the C interface; a library reporting another one is not used.
ABI_VERSION: int = _CONSTANTS["ABI_VERSION"]
#: Longest shortlist per row the kernels keep; longer ones run on the torch path.
KP_MAX: int = _CONSTANTS["KP_MAX"]
#: float32 distances are summed in this many float64 lanes (:func:`~ignn_lab.graph.knn_exact.exact_sqdist`).
LANES: int = _CONSTANTS["LANES"]
_ERR_LEN = _CONSTANTS["ERR_LEN"]
_SHARED = ("ABI_VERSION", "KP_MAX", "LANES", "ERR_LEN")
_ERRORS = {_CONSTANTS["EINVAL"]: ValueError, _CONSTANTS["ENOMEM"]: MemoryError}

_FLAGS = ["-O3", "-ffp-contract=off", "-fno-fast-math", "-shared", "-fPIC", "-std=c99"]
_NATIVE = "-march=native"  # dropped if the compiler refuses it (some clang builds)
_LOCK = threading.Lock()
_LOADED: dict = {}  # "lib", "why": the outcome of the first load, for the life of the process


class _RefineDims(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int64) for name in (
        "groups", "tile_rows", "tile_cols", "union_rows", "union_cols", "win_rows", "win_cols", "dim",
        "son_count", "son_cols", "out_count", "out_cols", "k", "shortlist")] + [
        ("key_bf16", ctypes.c_int32)] + [(name, ctypes.c_double) for name in ("delta", "scale", "rel", "slack")]


class _RefineBuffers(ctypes.Structure):
    _fields_ = [(name, ctypes.c_void_p) for name in (
        "keys", "row_start", "col_start", "row_term", "queries", "son", "union_base", "out_base", "son_off",
        "dist", "idx")]


class _BatchDims(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int64) for name in ("rows", "cands", "dim", "q_row", "q_cand", "c_row", "c_cand")]


class _Bf16Dims(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int64) for name in (
        "groups", "dim", "width", "rows", "union_rows", "union_cols", "son_count", "son_cols")] + [
        (name, ctypes.c_double) for name in ("shrink", "c1", "up", "kappa_up", "t_split")]


_P, _I64, _ERR = ctypes.c_void_p, ctypes.c_int64, ctypes.POINTER(ctypes.c_char)
_SIGNATURES = {
    "ignn_abi_version": ([], ctypes.c_int),
    "ignn_constant": ([ctypes.c_char_p, ctypes.POINTER(_I64)], ctypes.c_int),
    "ignn_sqdist": ([_P, _P, _I64, _P, _ERR, _I64], ctypes.c_int),
    "ignn_sqdist_batch": ([ctypes.POINTER(_BatchDims), _P, _P, _P, _ERR, _I64], ctypes.c_int),
    "ignn_refine_window": ([ctypes.POINTER(_RefineDims), ctypes.POINTER(_RefineBuffers), ctypes.POINTER(_I64),
                            _ERR, _I64], ctypes.c_int),
    "ignn_augment_union_bf16": ([ctypes.POINTER(_Bf16Dims), _P, _P, _P, _P, _ERR, _I64], ctypes.c_int),
    "ignn_augment_queries_bf16": ([ctypes.POINTER(_Bf16Dims), _P, _P, _P, _P, _ERR, _I64], ctypes.c_int),
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
    text = _SOURCE.read_bytes() + _HEADER.read_bytes()
    key = hashlib.sha256(text + " ".join([cc, _NATIVE, *_FLAGS]).encode() + _cpu_key().encode()).hexdigest()[:16]
    out = _cache_dir() / f"kernels-{key}{'.dll' if os.name == 'nt' else '.so'}"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".kernels-", suffix=".so")
    os.close(fd)
    try:
        for flags in ([_NATIVE, *_FLAGS], _FLAGS):
            cmd = [cc, *flags, f"-I{_SOURCE.parent}", str(_SOURCE), "-o", tmp, "-lm"]
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


def _open(path: Path) -> ctypes.CDLL:
    """Load a built library, declare its signatures and check it against ``_kernels.h``."""
    lib = ctypes.CDLL(str(path))
    for name, (args, res) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, res
    for name in _SHARED:
        value = _I64()
        if lib.ignn_constant(name.encode(), ctypes.byref(value)) != 0 or value.value != _CONSTANTS[name]:
            raise RuntimeError(f"{path.name} reports {name} = {value.value}, _kernels.h says {_CONSTANTS[name]} "
                               "(a stale or foreign build)")
    return lib


def load() -> ctypes.CDLL | None:
    """The compiled kernels, building them on first use; None when unavailable (see :func:`status`)."""
    with _LOCK:
        if "lib" in _LOADED:
            return _LOADED["lib"]
        lib, why = None, ""
        if os.environ.get("IGNN_LAB_KERNELS", "1") == "0":
            why = "disabled by IGNN_LAB_KERNELS=0"
        elif (cc := _compiler()) is None:
            why = "no C compiler found (set CC, or install gcc/clang)"
        else:
            try:
                lib = _open(_build(cc))
                why = f"compiled with {cc}"
            except (OSError, RuntimeError, subprocess.SubprocessError, AttributeError) as err:
                lib, why = None, f"build failed: {err}"
        _LOADED["lib"], _LOADED["why"] = lib, why
        return lib


def status() -> str:
    """Whether the kernels are in use, and why (for benchmark records and error reports)."""
    lib = load()
    return ("C kernels: " if lib else "torch path (no C kernels): ") + _LOADED["why"]


def _require() -> ctypes.CDLL:
    lib = load()
    if lib is None:
        raise RuntimeError(f"the C kernels are not available: {status()}")
    return lib


def _ptr(name: str, t: Tensor, dtype: torch.dtype, shape: tuple[int | None, ...] | None = None, *,
         contiguous: bool = True) -> int:
    """``t``'s data pointer, after checking what C will assume about it (``None`` in ``shape``: any size)."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype != dtype:
        raise TypeError(f"{name} must be {dtype}, got {t.dtype}")
    if t.device.type != "cpu":
        raise ValueError(f"{name} must be on the CPU, got a tensor on {t.device}")
    if shape is not None and (t.dim() != len(shape) or any(w is not None and n != w for n, w in zip(t.shape, shape))):
        want = "×".join("*" if w is None else str(w) for w in shape)
        raise ValueError(f"{name} must be {want}, got {'×'.join(map(str, t.shape)) or 'a scalar'}")
    if contiguous and not t.is_contiguous():
        raise ValueError(f"{name} must be contiguous (got strides {t.stride()})")
    return t.data_ptr()


def _shape(name: str, t: Tensor, ndim: int) -> tuple[int, ...]:
    """The shape of ``t``, which must be an ``ndim``-dimensional tensor (sizes are read off it)."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(t.shape)}")
    return tuple(t.shape)


def _call(name: str, *args) -> None:
    """Call a kernel entry point; a non-zero status becomes an exception carrying the kernel's message."""
    err = ctypes.create_string_buffer(_ERR_LEN)
    code = getattr(_require(), name)(*args, err, _ERR_LEN)
    if code:
        raise _ERRORS.get(code, RuntimeError)(f"{name}: {err.value.decode(errors='replace')}")


def sqdist(q: Tensor, s: Tensor) -> float:
    """The kernel's exact squared distance of two float32 vectors (for tests against ``exact_sqdist``)."""
    (n,) = _shape("q", q, 1)
    out = ctypes.c_float()
    _call("ignn_sqdist", _ptr("q", q, torch.float32, (n,)), _ptr("s", s, torch.float32, (n,)), n,
          ctypes.addressof(out))
    return out.value


def sqdist_batch(q: Tensor, cand: Tensor) -> Tensor:
    """:func:`~ignn_lab.graph.knn_exact.exact_sqdist` of float32 CPU tensors, by the kernel (same bits).

    Args:
        q: ...×D. cand: ...×K×D, broadcast against ``q.unsqueeze(-2)``.
    """
    _ptr("q", q, torch.float32, contiguous=False)
    _ptr("cand", cand, torch.float32, contiguous=False)
    D = q.shape[-1]
    if cand.shape[-1] != D:
        raise ValueError(f"cand vectors have {cand.shape[-1]} entries, q vectors {D}")
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
        dims = _BatchDims(rows=qv.shape[0], cands=qv.shape[1], dim=D, q_row=qv.stride(0), q_cand=qv.stride(1),
                          c_row=cv.stride(0), c_cand=cv.stride(1))
        _call("ignn_sqdist_batch", ctypes.byref(dims), qv.data_ptr(), cv.data_ptr(),
              _ptr("out", ov, torch.float32, (dims.rows, dims.cands)))

    run(qe, ce, out)
    return out


def refine_window(keys: Tensor, *, row_start: Tensor, col_start: Tensor, queries: Tensor, son: Tensor,
                  union_base: Tensor, out_base: Tensor, son_off: Tensor, dist: Tensor, idx: Tensor,
                  union_rows: int, union_cols: int, win_rows: int, win_cols: int, son_cols: int, out_cols: int,
                  shortlist: int, delta: float, bounds: tuple[Tensor, float, float, float] | None = None) -> int:
    """Shortlist, re-rank, certify and write one chunk's results (``ignn_refine_window`` in ``_kernels.c``).

    G tiles of th×tw queries, each against the union (``union_rows``×``union_cols`` son patches) of its queries'
    windows (``win_rows``×``win_cols``; the whole son grid for a whole-image search).

    Args:
        keys: G×(th·tw)×(union_rows·union_cols) float32 lower bounds, or bfloat16 keys with ``bounds``.
        row_start, col_start: G×th and G×tw int64, each tile row's / column's window start inside the union.
        queries: G×D×(th·tw) float32, the tiles' queries as columns. son: S×D float32 son patch rows.
        union_base: G int64, son row of each union's corner; son_cols: the son-grid width (n2).
        out_base: G int64, output row of each tile's first query; out_cols: the query-grid width (m2).
        son_off: G int64, subtracted from son rows in ``idx`` (the batch item's first row).
        dist, idx: O×k float32 / int64 outputs (k neighbours per query).
        shortlist: candidates recomputed exactly (k ≤ shortlist ≤ :data:`KP_MAX`).
        delta: relative error bound of the exact distance.
        bounds: (row_term G×(th·tw) float64, scale, rel, slack) mapping bfloat16 keys to lower bounds.

    Returns:
        Rows whose shortlist was not certified and that were rescanned exactly.

    Raises:
        TypeError, ValueError: a tensor of the wrong dtype, shape, device or layout, or sizes and indices
            that do not fit the tensors (checked here and again by the kernel). MemoryError: the kernel could
            not allocate its row buffer.
    """
    key_dtype = torch.bfloat16 if bounds is not None else torch.float32
    G, R, NC = _shape("keys", keys, 3)
    th, tw = _shape("row_start", row_start, 2)[1], _shape("col_start", col_start, 2)[1]
    D, k = _shape("son", son, 2)[1], _shape("dist", dist, 2)[1]
    if R != th * tw or NC != union_rows * union_cols:
        raise ValueError(f"keys are {G}×{R}×{NC}; tiles of {th}×{tw} queries against unions of "
                         f"{union_rows}×{union_cols} need {G}×{th * tw}×{union_rows * union_cols}")
    row_term, scale, rel, slack = bounds if bounds is not None else (None, 1.0, 0.0, 0.0)
    buffers = _RefineBuffers(
        keys=_ptr("keys", keys, key_dtype, (G, R, NC)),
        row_start=_ptr("row_start", row_start, torch.int64, (G, th)),
        col_start=_ptr("col_start", col_start, torch.int64, (G, tw)),
        row_term=None if row_term is None else _ptr("row_term", row_term, torch.float64, (G, R)),
        queries=_ptr("queries", queries, torch.float32, (G, D, R)), son=_ptr("son", son, torch.float32, (None, D)),
        union_base=_ptr("union_base", union_base, torch.int64, (G,)),
        out_base=_ptr("out_base", out_base, torch.int64, (G,)), son_off=_ptr("son_off", son_off, torch.int64, (G,)),
        dist=_ptr("dist", dist, torch.float32, (None, k)), idx=_ptr("idx", idx, torch.int64, (dist.shape[0], k)))
    dims = _RefineDims(groups=G, tile_rows=th, tile_cols=tw, union_rows=union_rows, union_cols=union_cols,
                       win_rows=win_rows, win_cols=win_cols, dim=D, son_count=son.shape[0], son_cols=son_cols,
                       out_count=dist.shape[0], out_cols=out_cols, k=k, shortlist=shortlist,
                       key_bf16=int(bounds is not None), delta=delta, scale=scale, rel=rel, slack=slack)
    rescans = _I64()
    _call("ignn_refine_window", ctypes.byref(dims), ctypes.byref(buffers), ctypes.byref(rescans))
    return rescans.value


def augment_union_bf16(son: Tensor, *, union_base: Tensor, centre: Tensor, out: Tensor, union_rows: int,
                       union_cols: int, son_cols: int, shrink: float, c1: float, up: float) -> None:
    """Fill ``out`` (G×(union_rows·union_cols)×W bfloat16) with the candidate rows of :mod:`~ignn_lab.graph.knn_bf16`.

    Args:
        son: S×D float32 son patch rows. union_base: G int64, son row of each union's corner.
        centre: G×D float32, each group's centre. son_cols: the son-grid width.
        shrink, c1, up: the constants of the bound (:mod:`~ignn_lab.graph.knn_bf16`).
    """
    G, rows, W = _shape("out", out, 3)
    D = _shape("son", son, 2)[1]
    dims = _Bf16Dims(groups=G, dim=D, width=W, rows=rows, union_rows=union_rows, union_cols=union_cols,
                     son_count=son.shape[0], son_cols=son_cols, shrink=shrink, c1=c1, up=up)
    _call("ignn_augment_union_bf16", ctypes.byref(dims), _ptr("son", son, torch.float32, (None, D)),
          _ptr("union_base", union_base, torch.int64, (G,)), _ptr("centre", centre, torch.float32, (G, D)),
          _ptr("out", out, torch.bfloat16, (G, rows, W)))


def augment_queries_bf16(queries: Tensor, *, centre: Tensor, out: Tensor, row_term: Tensor, shrink: float,
                         c1: float, up: float, kappa_up: float, t_split: float) -> None:
    """Fill ``out`` (G×R×W bfloat16) with the query rows and ``row_term`` (G×R float64) with ``e²/t``.

    Args:
        queries: G×D×R float32, each group's queries as columns. centre: G×D float32.
        shrink, c1, up, kappa_up, t_split: the constants of the bound (:mod:`~ignn_lab.graph.knn_bf16`).
    """
    G, D, R = _shape("queries", queries, 3)
    W = _shape("out", out, 3)[2]
    dims = _Bf16Dims(groups=G, dim=D, width=W, rows=R, shrink=shrink, c1=c1, up=up, kappa_up=kappa_up,
                     t_split=t_split)
    _call("ignn_augment_queries_bf16", ctypes.byref(dims), _ptr("queries", queries, torch.float32, (G, D, R)),
          _ptr("centre", centre, torch.float32, (G, D)), _ptr("out", out, torch.bfloat16, (G, R, W)),
          _ptr("row_term", row_term, torch.float64, (G, R)))
