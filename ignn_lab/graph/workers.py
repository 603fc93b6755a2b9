"""Worker threads of the CPU searches: :func:`parallel_bands` spreads independent parts of one search over a pool
of single-threaded workers, and :func:`thread_work` keeps each thread's reusable buffers.

A windowed search is thousands of small operations; intra-op threading scales them poorly (and collapses when
the CPU is shared), so each part runs single-threaded in its own worker, and the workers run in parallel
(torch, the C kernels and faiss all release the GIL). The caller's own thread settings are never touched:
workers set their torch thread count to 1 once, when the pool starts them. The pool lives for the process, so
searches do not pay for thread start-up and fresh allocator arenas each time; its threads are ordinary
(non-daemon) threads, so interpreter exit waits for a part in progress instead of tearing down torch under it.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import torch
from torch import Tensor

__all__ = ["parallel_bands", "thread_work"]

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
_LOCAL = threading.local()


def thread_work(device: torch.device) -> dict[str, Tensor]:
    """The calling thread's reusable CPU buffers, kept between searches (a few MiB each: chunks are bounded),
    so that repeated searches do not page-fault fresh buffers. Other devices get a fresh dict.

    Buffers made under inference mode are inference tensors, which may not be written outside it: each mode has
    its own set.
    """
    if device.type != "cpu":
        return {}
    name = "work_inference" if torch.is_inference_mode_enabled() else "work"
    work = getattr(_LOCAL, name, None)
    if work is None:
        work = {}
        setattr(_LOCAL, name, work)
    return work


def _start_worker(ready: threading.Barrier) -> None:
    # torch sets up each OS thread's thread count lazily, at its first parallel operation, from the process
    # default (the caller's count): ask first, so that this lazy set-up runs now and cannot undo the 1 below
    # later (workers would run 2-thread teams, and the extra OpenMP threads slow the whole process)
    torch.get_num_threads()
    torch.set_num_threads(1)  # this worker's own setting (per OS thread in PyTorch's OpenMP builds)
    ready.wait()


def _worker_pool(n: int) -> ThreadPoolExecutor:
    """A process-wide pool of at least ``n`` single-threaded workers, all started before it is returned."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL._max_workers < n:
            old = _POOL
            ready = threading.Barrier(n + 1)
            _POOL = ThreadPoolExecutor(max_workers=n, thread_name_prefix="ignn-lab-knn",
                                       initializer=_start_worker, initargs=(ready,))
            for _ in range(n):  # an empty task per worker makes the pool start every thread now
                _POOL.submit(int)
            ready.wait()
            # torch also stores the last set_num_threads value as the default of threads created later: give
            # that back the caller's setting, which the workers' start-up overwrote
            torch.set_num_threads(torch.get_num_threads())
            if old is not None:
                old.shutdown(wait=False)
        return _POOL


def parallel_bands(fn: Callable[[list[int]], None], n_parts: int, device: torch.device) -> None:
    """Call ``fn(parts)`` on disjoint runs of consecutive part numbers (bands, chunks), one run per torch thread
    of the caller; consecutive, so that work a worker shares between neighbouring parts (a band's query
    patches) is done once. On one thread, or off the CPU, ``fn`` gets every part in the calling thread.
    """
    n = min(torch.get_num_threads(), n_parts) if device.type == "cpu" else 1
    if n <= 1:
        fn(list(range(n_parts)))
        return
    inference = torch.is_inference_mode_enabled()  # thread-local: carry the caller's mode into the workers

    def share(w: int) -> None:
        with torch.inference_mode(inference):
            fn(list(range(w * n_parts // n, (w + 1) * n_parts // n)))

    futures = [_worker_pool(n).submit(share, w) for w in range(n)]
    for f in futures:
        f.result()
