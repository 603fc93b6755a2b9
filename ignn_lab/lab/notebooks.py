"""Run the kit's papermill-parameterised notebooks headless and read what they record."""

from __future__ import annotations

import json
import os
from pathlib import Path

import ignn_lab
from ignn_lab._optional import require

__all__ = ["notebooks_dir", "list_notebooks", "find_notebook", "run_notebook"]


def notebooks_dir() -> Path:
    """The ``notebooks/`` folder of this checkout (``IGNN_LAB_NOTEBOOKS`` overrides)."""
    env = os.environ.get("IGNN_LAB_NOTEBOOKS")
    return Path(env) if env else Path(ignn_lab.__file__).resolve().parents[1] / "notebooks"


def list_notebooks() -> list[str]:
    d = notebooks_dir()
    return sorted(p.stem for p in d.glob("*.ipynb")) if d.is_dir() else []


def find_notebook(name: str) -> Path:
    """``03_evaluate``, ``03_evaluate.ipynb``, ``evaluate`` or a path → the notebook file."""
    p = Path(name)
    if p.suffix == ".ipynb" and p.is_file():
        return p
    d = notebooks_dir()
    for cand in [d / name, d / f"{name}.ipynb", *sorted(d.glob(f"*_{name}.ipynb"))]:
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"no notebook {name!r} in {d}; available: {', '.join(list_notebooks()) or 'none'}")


def run_notebook(name: str, parameters: dict, out: str | os.PathLike, *, progress: bool = True,
                 timeout: int | None = None) -> Path:
    """Execute a notebook with papermill, injecting ``parameters``; the executed copy is saved into ``out``.

    Returns:
        The path of the executed notebook (``out/<name>.ipynb``).
    """
    pm = require("papermill")
    src = find_notebook(name)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dst = out / src.name
    pm.execute_notebook(str(src), str(dst), parameters=parameters, progress_bar=progress, kernel_name="python3",
                        cwd=str(Path.cwd()), execution_timeout=timeout)
    return dst


def read_results(out: str | os.PathLike) -> dict:
    """The ``results.json`` a notebook or task wrote into ``out``."""
    return json.loads((Path(out) / "results.json").read_text())
