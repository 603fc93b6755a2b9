"""Lazy imports of optional dependencies with an install hint."""

from __future__ import annotations

import importlib
from types import ModuleType

_HINTS = {
    "faiss": "pip install 'ignn-lab[faiss]' (CPU) or 'ignn-lab[gpu]' / conda install -c pytorch faiss-gpu",
    "papermill": "pip install 'ignn-lab[notebooks]'",
    "nbformat": "pip install 'ignn-lab[notebooks]'",
    "ipywidgets": "pip install 'ignn-lab[notebooks]'",
    "anywidget": "pip install 'ignn-lab[notebooks]'",
    "playwright": "pip install 'ignn-lab[dev]' (and Debian's chromium: apt-get install chromium)",
}


def available(name: str) -> bool:
    """True when ``name`` can be imported."""
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def require(name: str, hint: str | None = None) -> ModuleType:
    """Import ``name`` or raise an ImportError that says what to install."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        how = hint or _HINTS.get(name, f"pip install {name}")
        raise ImportError(f"ignn-lab needs the optional package '{name}' for this: {how}") from exc
