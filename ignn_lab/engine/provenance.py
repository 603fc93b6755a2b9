"""What every result records about where it came from: the checkout's commit, versions, the machine."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import ignn_lab

__all__ = ["cpu_name", "environment", "git_commit", "machine_info"]


def git_commit() -> str | None:
    """The commit of the checkout ``ignn_lab`` is imported from (with ``+dirty`` when it has uncommitted
    changes to tracked files), or None outside a git checkout."""
    root = str(Path(ignn_lab.__file__).resolve().parents[1])
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5).stdout.strip()
        if not head:
            return None
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


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
            "torch": str(torch.__version__), "python": platform.python_version(), "platform": platform.platform()}


def environment() -> dict:
    """:func:`machine_info` with the kit's and numpy's versions: what a result's provenance records."""
    import numpy as np

    return {"ignn_lab": ignn_lab.__version__, "numpy": np.__version__, **machine_info()}
