"""What every result records about where it came from: the checkout's commit, versions, the machine."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import ignn_lab

__all__ = ["git_commit", "environment"]


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


def environment() -> dict:
    """Versions and machine: ignn_lab, torch, numpy, python, platform, CPU count, torch threads."""
    import numpy as np
    import torch

    return {"ignn_lab": ignn_lab.__version__, "torch": str(torch.__version__), "numpy": np.__version__,
            "python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads()}
