"""What the benchmarks record about the machine and the process (the machine record lives in
``ignn_lab.engine.provenance``, which results use too)."""

from __future__ import annotations

from ignn_lab.engine.provenance import cpu_name, machine_info

__all__ = ["cpu_name", "machine_info", "proc_status_mb"]


def proc_status_mb(field: str) -> float:
    """A memory field of ``/proc/self/status`` (``VmRSS``, ``VmHWM`` …) in MiB; NaN where unavailable."""
    try:
        with open("/proc/self/status") as f:
            return next(int(ln.split()[1]) / 1024 for ln in f if ln.startswith(field + ":"))
    except (OSError, StopIteration):
        return float("nan")
