"""faiss, wrapped: loading it (optional, with an install hint), its brute-force search on torch tensors and its
C++ heap selection. Nothing here depends on the rest of :mod:`ignn_lab.graph`; the faiss backend
(:mod:`~ignn_lab.graph.knn_faiss`) and the torch backend's shortlists (:mod:`~ignn_lab.graph.knn_exact`) both
use it. Pointers are passed to faiss directly; faiss is never monkey-patched.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

import torch
from torch import Tensor

from ignn_lab._optional import require

__all__ = ["faiss_available", "faiss_has_gpu", "faiss_search", "heap_smallest", "load_faiss"]

_GPU_RESOURCES: dict[int, object] = {}  # one StandardGpuResources per device, made on first use


def load_faiss() -> ModuleType:
    """Import faiss, or raise an ImportError that says how to install it.

    faiss wheels bundle their own OpenMP runtime, whose idle threads spin next to torch's and slow both down
    badly on few cores. Unless the user set ``OMP_WAIT_POLICY``, faiss is imported with it set to ``PASSIVE``:
    that runtime reads the variable once, when it loads, and the variable is removed again right after, so
    nothing else in the process sees it (torch's runtime has loaded long before).
    """
    mod = sys.modules.get("faiss")
    if mod is not None:
        return mod
    set_here = "OMP_WAIT_POLICY" not in os.environ
    if set_here:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        return require("faiss")
    finally:
        if set_here:
            os.environ.pop("OMP_WAIT_POLICY", None)


def faiss_available() -> bool:
    """True when faiss can be imported (through :func:`load_faiss`)."""
    try:
        load_faiss()
    except ImportError:
        return False
    return True


def faiss_has_gpu(faiss: ModuleType) -> bool:
    """True when this faiss build can run on a GPU."""
    get = getattr(faiss, "get_num_gpus", None)
    return bool(get and get() > 0 and hasattr(faiss, "bfKnn"))


def _ptr(faiss: ModuleType, t: Tensor):
    if not t.is_contiguous():
        raise ValueError(f"faiss needs contiguous tensors, got strides {t.stride()}")
    addr = t.data_ptr()
    if t.dtype == torch.float32:
        return faiss.cast_integer_to_float_ptr(addr)
    if t.dtype == torch.int64:
        return faiss.cast_integer_to_idx_t_ptr(addr)
    raise TypeError(f"faiss pointers are made from float32 or int64 tensors, got {t.dtype}")


def faiss_search(faiss: ModuleType, xq: Tensor, xb: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """k smallest faiss L2 distances (float32 rounding) of float32 R×D queries among N×D vectors.

    CPU tensors use ``faiss.knn_L2sqr``; CUDA tensors use ``faiss.bfKnn`` on their device (needs faiss-gpu).

    Returns:
        dist: R×k float32 (approximate, ascending). idx: R×k int64 rows of ``xb``.
    """
    xq, xb = xq.contiguous(), xb.contiguous()
    nq, d = xq.shape
    if xb.dim() != 2 or xb.shape[1] != d or xb.device != xq.device:
        raise ValueError(f"faiss_search: queries {tuple(xq.shape)} on {xq.device}, base {tuple(xb.shape)} on "
                         f"{xb.device}: need R×D and N×D on one device")
    dist = torch.empty((nq, k), dtype=torch.float32, device=xq.device)
    idx = torch.empty((nq, k), dtype=torch.int64, device=xq.device)
    if xq.device.type == "cpu":
        faiss.knn_L2sqr(_ptr(faiss, xq), _ptr(faiss, xb), d, nq, xb.shape[0], k, _ptr(faiss, dist),
                        _ptr(faiss, idx))
        return dist, idx
    if xq.device.type != "cuda" or not faiss_has_gpu(faiss):  # pragma: no cover - needs faiss-gpu
        raise RuntimeError(f"faiss cannot search tensors on {xq.device}: this faiss build has no GPU support")
    return _faiss_gpu_search(faiss, xq, xb, k, dist, idx)  # pragma: no cover


def _faiss_gpu_search(faiss, xq, xb, k, dist, idx):  # pragma: no cover - needs a GPU and faiss-gpu
    dev = xq.device.index if xq.device.index is not None else torch.cuda.current_device()
    res = _GPU_RESOURCES.get(dev)
    if res is None:
        res = _GPU_RESOURCES[dev] = faiss.StandardGpuResources()
    args = faiss.GpuDistanceParams()
    args.metric, args.k, args.dims = faiss.METRIC_L2, k, xq.shape[1]
    args.vectors, args.vectorsRowMajor, args.vectorType = _ptr(faiss, xb), True, faiss.DistanceDataType_F32
    args.numVectors = xb.shape[0]
    args.queries, args.queriesRowMajor, args.queryType = _ptr(faiss, xq), True, faiss.DistanceDataType_F32
    args.numQueries = xq.shape[0]
    args.outDistances, args.outIndices = _ptr(faiss, dist), _ptr(faiss, idx)
    args.outIndicesType = faiss.IndicesDataType_I64
    args.device = dev
    stream = torch.cuda.current_stream(dev)
    prior = res.getDefaultStream(dev)
    res.setDefaultStream(dev, faiss.cast_integer_to_cudastream_t(stream.cuda_stream))
    try:
        faiss.bfKnn(res, args)
    finally:
        res.setDefaultStream(dev, prior)
    return dist, idx


def heap_smallest(bound: Tensor, kp: int) -> tuple[Tensor, Tensor, Tensor]:
    """The ``kp`` smallest entries of each row of a float32 CPU ...×Nc tensor by faiss's C++ selection:
    (values, positions, a lower bound on every entry left out), as
    :func:`~ignn_lab.graph.knn_exact.smallest_entries`.

    A (kp+1)-entry max-heap per row, one pass over the row. Entries are inserted only when smaller than the
    heap's top, so an entry left out is at least the final top, the ``(kp+1)``-th value: that is the bound on
    the rest. ``inf`` (masked) entries never enter; an unfilled slot keeps faiss's ``FLT_MAX`` with id −1,
    which becomes an ``inf`` value at position 0. NaN entries would be passed over silently: callers check the
    inputs first (:func:`~ignn_lab.graph.knn_exact.heap_select_ok`). Runs on as many OpenMP threads as the
    calling thread's torch setting (faiss's thread count is per thread, and restored).
    """
    if bound.dtype != torch.float32 or bound.device.type != "cpu":
        raise TypeError(f"heap selection takes float32 CPU tensors, got {bound.dtype} on {bound.device}")
    faiss = load_faiss()
    n = bound.shape[-1]
    rows = bound.reshape(-1, n).contiguous()
    vals = torch.empty((rows.shape[0], kp + 1), dtype=torch.float32)
    ids = torch.empty((rows.shape[0], kp + 1), dtype=torch.int64)
    heap = faiss.float_maxheap_array_t()
    heap.nh, heap.k = rows.shape[0], kp + 1
    heap.val = faiss.cast_integer_to_float_ptr(vals.data_ptr())
    heap.ids = faiss.cast_integer_to_idx_t_ptr(ids.data_ptr())
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(torch.get_num_threads())
    try:
        heap.heapify()
        heap.addn(n, faiss.cast_integer_to_float_ptr(rows.data_ptr()))
        heap.reorder()
    finally:
        faiss.omp_set_num_threads(threads)
    unfilled = ids[:, :kp] < 0
    short = vals[:, :kp].masked_fill(unfilled, float("inf"))
    pos = ids[:, :kp].masked_fill(unfilled, 0)
    lead = bound.shape[:-1]
    return short.view(*lead, kp), pos.view(*lead, kp), vals[:, kp].reshape(lead)
