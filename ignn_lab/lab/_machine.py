"""What the benchmarks record about the machine and the process (shared by ``bench_knn`` and ``bench_models``)."""

from __future__ import annotations

import os
import platform

__all__ = ["cpu_name", "machine_info", "proc_status_mb"]


def cpu_name() -> str:
    """The CPU model from ``/proc/cpuinfo``, else what ``platform`` knows."""
    fallback = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), fallback)
    except OSError:
        return fallback


def machine_info() -> dict:
    """CPU, core count, torch threads and versions: the ``machine`` record of a benchmark JSON."""
    import torch

    return {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform()}


def proc_status_mb(field: str) -> float:
    """A memory field of ``/proc/self/status`` (``VmRSS``, ``VmHWM`` …) in MiB; NaN where unavailable."""
    try:
        with open("/proc/self/status") as f:
            return next(int(ln.split()[1]) / 1024 for ln in f if ln.startswith(field + ":"))
    except (OSError, StopIteration):
        return float("nan")
