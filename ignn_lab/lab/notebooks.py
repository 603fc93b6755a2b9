"""Run the kit's papermill-parameterised notebooks headless and read what they record."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path
from typing import Any

import ignn_lab
from ignn_lab._optional import require
from ignn_lab.data.outputs import OutputSet

__all__ = ["NotebookError", "check_parameters", "notebooks_dir", "list_notebooks", "find_notebook",
           "notebook_parameters", "run_notebook"]


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


class NotebookError(RuntimeError):
    """A notebook that raised while it ran; the message names the cell and the error, in one line."""


def notebook_parameters(name: str) -> dict[str, Any]:
    """The parameters a notebook declares (its ``parameters`` cell) and their defaults."""
    pm = require("papermill")
    out = {}
    for key, info in pm.inspect_notebook(str(find_notebook(name))).items():
        try:
            out[key] = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError):
            out[key] = info["default"]  # not a literal: the source text (any value is accepted)
    return out


def _kind(value: Any) -> type | None:
    """The type a parameter's default asks for (None: anything)."""
    for t in (bool, int, float, str, list, dict):
        if isinstance(value, t):
            return t
    return None


def _fits(value: Any, want: type | None) -> bool:
    if value is None or want is None:
        return True
    if isinstance(value, bool):
        return want is bool
    return isinstance(value, want) or (want is float and isinstance(value, int))


def check_parameters(name: str, parameters: dict[str, Any], out: str | os.PathLike) -> dict[str, Any]:
    """The parameters to inject: every name must be one the notebook declares, every value of its default's type
    (or None); a notebook with an ``out`` parameter writes its results into ``out``.

    Raises:
        ValueError: an unknown name (the message lists the notebook's parameters), a value of the wrong type, or
            an ``out`` parameter that differs from ``out``.
    """
    declared = notebook_parameters(name)
    stem = find_notebook(name).stem
    unknown = [k for k in parameters if k not in declared]
    if unknown:
        raise ValueError(f"notebook {stem} has no parameter {', '.join(map(repr, unknown))}; its parameters: "
                         f"{', '.join(declared)}")
    for k, v in parameters.items():
        want = _kind(declared[k])
        if not _fits(v, want):
            raise ValueError(f"notebook {stem}: parameter {k}={v!r} is not a {want.__name__}, the type of its "
                             f"default {declared[k]!r}; give a {want.__name__} or None")
    params = dict(parameters)
    if "out" in declared:
        target = str(Path(out).expanduser().resolve())
        given = params.get("out")
        if given is not None and str(Path(given).expanduser().resolve()) != target:
            raise ValueError(f"notebook {stem}: parameter out={params['out']!r} differs from the output folder "
                             f"{target}; the notebook's results go to the output folder, so give it once")
        params["out"] = target
    return params


def run_notebook(name: str, parameters: dict, out: str | os.PathLike, *, progress: bool = True,
                 timeout: int | None = None) -> Path:
    """Execute a notebook with papermill, injecting ``parameters``; its results and the executed copy go to ``out``.

    The parameters are checked first (:func:`check_parameters`); a notebook with an ``out`` parameter gets
    ``out``. The executed notebook replaces ``out/<name>.ipynb`` only when it ran to the end; when a cell raised,
    it is kept as ``out/<name>.failed.ipynb`` and :class:`NotebookError` says which cell and why.

    Returns:
        The path of the executed notebook (``out/<name>.ipynb``).
    """
    pm = require("papermill")
    from papermill.exceptions import PapermillExecutionError

    src = find_notebook(name)
    params = check_parameters(name, parameters, out)
    failed_name = f"{src.stem}.failed.ipynb"  # a member: a run that succeeds removes an earlier failure's notebook
    with OutputSet(out, [src.name, failed_name], what="output folder (--out)") as outs:
        staged = outs.path(src.name)
        try:
            pm.execute_notebook(str(src), str(staged), parameters=params, progress_bar=progress,
                                kernel_name="python3", cwd=str(Path.cwd()), execution_timeout=timeout)
        except PapermillExecutionError as exc:
            failed = outs.final(failed_name)
            kept = ""
            if staged.is_file():
                os.replace(staged, failed)
                kept = f"; the executed notebook is {failed}"
            first = str(exc.evalue).splitlines()[0] if str(exc.evalue) else ""
            raise NotebookError(f"notebook {src.stem} failed in cell {exc.exec_count}: {exc.ename}: {first}{kept}") \
                from None
    return outs.final(src.name)


