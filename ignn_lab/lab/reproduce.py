"""``ignn-lab reproduce``: plan a table's notebook runs, skip those already done, run the rest, assemble the table.

Each run of :mod:`ignn_lab.lab.tables` gets a folder ``OUT/runs/<name>`` and a plan file ``OUT/plan/<name>.json``,
and a key: the SHA-256 of the notebook's bytes, the canonical parameters (checkpoint paths replaced by the
files' SHA-256), the package version and the code commit (:func:`code_commit`). A run whose folder holds a
``run.json`` with the same key and a valid ``results.json`` is not run again. The others run through papermill,
each as ``ignn-lab run-notebook --plan FILE`` in its own process (``jobs`` at a time), or are written into a
SLURM array script (one array index per run) for a cluster; ``reproduce`` assembles the tables once every run
is done: ``OUT/TABLE.md``, ``.csv`` and ``.tex``, each cell with the published value where one exists, the
difference, and its provenance (run folder, key, commit, seed).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import ignn_lab
from ignn_lab.data.io import atomic_write_bytes, sha256_file
from ignn_lab.lab.tables import PROFILES, TABLES, RunSpec, TableSpec, table_spec

__all__ = ["PlannedRun", "ReproduceReport", "assemble_table", "code_commit", "emit_jobs", "execute_plan",
           "plan_runs", "reproduce", "run_key"]

_ROOT = Path(ignn_lab.__file__).resolve().parents[1]
#: What the code commit covers: everything that decides what a run computes.
_CODE_PATHS = ("ignn_lab", "notebooks")


def _git(*args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(_ROOT), *args], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.decode(errors="replace") if proc.returncode == 0 else None


def code_commit() -> str | None:
    """The last commit that changed ``ignn_lab/`` or ``notebooks/`` in this checkout, with ``+dirty.<sha>``
    (a hash of the uncommitted changes there, untracked files included) when they differ from it; None outside
    a git checkout. Commits that touch only docs, tests or ``results/`` leave it, and so every run's key, alone."""
    head = (_git("log", "-1", "--format=%H", "--", *_CODE_PATHS) or "").strip()
    if not head:
        return None
    diff = _git("diff", "HEAD", "--binary", "--", *_CODE_PATHS) or ""
    untracked = (_git("ls-files", "--others", "--exclude-standard", "--", *_CODE_PATHS) or "").split()
    if not diff and not untracked:
        return head
    h = hashlib.sha256(diff.encode())
    for name in sorted(untracked):
        h.update(name.encode())
        h.update((_ROOT / name).read_bytes() if (_ROOT / name).is_file() else b"")
    return f"{head}+dirty.{h.hexdigest()[:12]}"


def _canonical(value, files: dict[str, str]):
    """Parameters with every checkpoint path replaced by ``sha256:<hex>`` (the key must not depend on where a
    file lives), dicts sorted by key."""
    if isinstance(value, dict):
        return {str(k): _canonical(v, files) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_canonical(v, files) for v in value]
    if isinstance(value, str) and value in files:
        return f"sha256:{files[value]}"
    return value


def run_key(spec: RunSpec, *, commit: str | None = None) -> tuple[str, dict]:
    """The cache key of a run and what went into it.

    Args:
        spec: the run.
        commit: the code commit (default: :func:`code_commit`, computed now).

    Returns:
        (hex SHA-256 of the parts' canonical JSON, the parts).
    """
    from ignn_lab.lab.notebooks import find_notebook

    missing = [f for f in spec.files if not Path(f).is_file()]
    if missing:
        raise FileNotFoundError(f"run {spec.name}: checkpoint(s) {missing} do not exist")
    files = {f: sha256_file(f) for f in spec.files}
    parts = {"notebook": spec.notebook, "notebook_sha256": sha256_file(find_notebook(spec.notebook)),
             "parameters": _canonical(spec.parameters, files), "ignn_lab": ignn_lab.__version__,
             "commit": commit if commit is not None else code_commit()}
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest(), parts


@dataclass
class PlannedRun:
    """A run placed in an output folder: its key, folder and plan file."""

    spec: RunSpec
    run_dir: Path
    plan_file: Path
    key: str
    key_parts: dict

    def done(self) -> bool:
        """True when the folder holds this key's finished run (``run.json`` + a valid ``results.json``)."""
        return _done(self.run_dir, self.key)


def _done(run_dir: Path, key: str) -> bool:
    from ignn_lab.lab.results import read_results

    try:
        record = json.loads((run_dir / "run.json").read_text())
        if record.get("key") != key:
            return False
        read_results(run_dir)
    except (OSError, ValueError):
        return False
    return True


def plan_runs(specs: Iterable[TableSpec], out: str | os.PathLike) -> list[PlannedRun]:
    """The distinct runs behind ``specs``, keyed, with their plan files written to ``out/plan/``.

    Raises:
        ValueError: a run cannot be planned (a checkpoint is missing: the message says how to make it), or two
            tables give one run name different parameters.
    """
    out = Path(out).resolve()
    runs: dict[str, RunSpec] = {}
    missing: list[str] = []
    hints: list[str] = []
    for spec in specs:
        for row in spec.rows:
            run = row.run
            old = runs.setdefault(run.name, run)
            if (old.notebook, old.parameters, old.files) != (run.notebook, run.parameters, run.files):
                raise ValueError(f"run {run.name!r} is defined twice with different parameters")
            if run.needs and old is run and run.needs[0] not in missing:
                missing.append(run.needs[0])
                hints += [h for h in run.needs[1:] if h not in hints]
    if missing:
        raise ValueError("cannot plan the runs: " + "; ".join(missing)
                         + ("" if not hints else ". " + " ".join(hints)))
    commit = code_commit()
    planned = []
    for name, run in runs.items():
        key, parts = run_key(run, commit=commit)
        run_dir, plan_file = out / "runs" / name, out / "plan" / f"{name}.json"
        record = {"name": name, "spec": asdict(run), "run_dir": str(run_dir), "key": key, "key_parts": parts}
        _write_if_changed(plan_file, json.dumps(record, indent=1, sort_keys=True).encode())
        planned.append(PlannedRun(run, run_dir, plan_file, key, parts))
    return planned


def _cited_elsewhere(out: Path, names: list[str], todo: list[PlannedRun]) -> dict[str, list[str]]:
    """Tables in ``out`` other than ``names`` that cite a run of ``todo`` under another key: running it replaces
    the folder they point to."""
    keys = {r.spec.name: r.key for r in todo}
    found: dict[str, list[str]] = {}
    for path in sorted(out.glob("*.csv")):
        if path.stem in names:
            continue
        try:
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
        except (OSError, csv.Error, UnicodeDecodeError):
            continue
        runs = sorted({r["run"] for r in rows if r.get("run") in keys and r.get("key") != keys[r["run"]]})
        if runs:
            found[path.stem] = runs
    return found


def _write_if_changed(path: Path, data: bytes) -> None:
    if not (path.is_file() and path.read_bytes() == data):
        atomic_write_bytes(path, data)


def execute_plan(plan_file: str | os.PathLike, *, progress: bool = False) -> str:
    """Run one planned run (``ignn-lab run-notebook --plan FILE``): papermill into its folder, then
    ``run.json`` with the key. A folder holding another key's files is emptied first; one holding this key's
    unfinished run is kept (a training notebook continues it).

    Returns:
        ``"cached"`` when the run was already done, else ``"ran"``.

    Raises:
        ValueError: the plan file is not one, or the checkout changed since it was written (its key differs).
    """
    from ignn_lab.lab.notebooks import run_notebook
    from ignn_lab.lab.results import read_results

    path = Path(plan_file)
    try:
        plan = json.loads(path.read_text())
        spec, run_dir, key = RunSpec(**plan["spec"]), Path(plan["run_dir"]), plan["key"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a reproduce plan file ({exc})") from None
    spec = RunSpec(spec.name, spec.notebook, spec.parameters, tuple(spec.files), tuple(spec.needs))
    now, parts = run_key(spec)
    if now != key:
        raise ValueError(f"{path}: the checkout changed since this plan was written (key {key[:12]} became "
                         f"{now[:12]}); plan again with ignn-lab reproduce")
    if _done(run_dir, key):
        return "cached"
    started = run_dir / "started.json"
    try:
        same = json.loads(started.read_text()).get("key") == key
    except (OSError, ValueError):
        same = False
    if not same and run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("run.json", "results.json"):
        (run_dir / stale).unlink(missing_ok=True)
    atomic_write_bytes(started, json.dumps({"key": key}).encode())
    t0 = time.perf_counter()
    run_notebook(spec.notebook, {**spec.parameters, "out": str(run_dir)}, run_dir, progress=progress)
    read_results(run_dir)
    record = {"name": spec.name, "key": key, "key_parts": parts, "notebook": spec.notebook,
              "commit": parts["commit"], "seconds": round(time.perf_counter() - t0, 1),
              "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    atomic_write_bytes(run_dir / "run.json", json.dumps(record, indent=1).encode())
    return "ran"


def _run_command(plan_file: Path) -> list[str]:
    return [sys.executable, "-m", "ignn_lab.cli", "run-notebook", "--plan", str(plan_file), "--quiet"]


def _subprocess_env(jobs: int, data_root: str | os.PathLike | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    if jobs > 1 and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    if data_root is not None:
        env["IGNN_LAB_DATA"] = str(Path(data_root).resolve())
    return env


def _execute_local(runs: list[PlannedRun], *, jobs: int, data_root, progress: bool) -> dict[str, str]:
    """Run each planned run in its own process, ``jobs`` at a time; returns name -> error for the failures."""
    from tqdm.auto import tqdm

    env = _subprocess_env(jobs, data_root)
    failed: dict[str, str] = {}

    def one(run: PlannedRun) -> None:
        run.run_dir.mkdir(parents=True, exist_ok=True)
        log = run.run_dir.parent / f"{run.spec.name}.log"
        with open(log, "wb") as f:
            proc = subprocess.run(_run_command(run.plan_file), stdout=f, stderr=subprocess.STDOUT, env=env,
                                  cwd=str(Path.cwd()))
        if proc.returncode != 0 or not run.done():
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            failed[run.spec.name] = f"exit {proc.returncode}; log {log}: " + " | ".join(tail)

    with ThreadPoolExecutor(max(1, jobs)) as pool, tqdm(total=len(runs), desc="reproduce", unit="run",
                                                        disable=not progress) as bar:
        for _ in pool.map(lambda r: (one(r), bar.update()), runs):
            pass
    return failed


def emit_jobs(runs: list[PlannedRun], path: str | os.PathLike, *, command: str, device: str = "cpu") -> Path:
    """Write a SLURM array script with one index per run (``sbatch PATH``); ``command`` is the ``reproduce``
    command that assembles the tables afterwards."""
    if not runs:
        raise ValueError("emit_jobs: no run to emit (every planned run is done)")
    path = Path(path)
    logs = runs[0].run_dir.parent.parent / "slurm"
    python = shlex.quote(sys.executable)
    lines = ["#!/usr/bin/env bash",
             f"# {len(runs)} ignn-lab notebook runs, one per array index; written by ignn-lab reproduce --emit-jobs.",
             "# Submit: sbatch " + shlex.quote(str(path.resolve())) + "   (add --partition/--account/--time as your "
             "cluster needs)",
             f"# Then assemble the tables (nothing is run again): {command}",
             "# A run re-queued after a stop continues where it was (training runs resume from last.pt).",
             "#SBATCH --job-name=ignn-lab-reproduce",
             f"#SBATCH --array=0-{len(runs) - 1}",
             f"#SBATCH --output={logs}/%A_%a.out",
             f"#SBATCH --cpus-per-task={8 if device.startswith('cuda') else 2}",
             *(["#SBATCH --gres=gpu:1"] if device.startswith("cuda") else []),
             "set -euo pipefail",
             f"cd {shlex.quote(str(Path.cwd()))}",
             f"export PYTHONPATH={shlex.quote(str(_ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}",
             f"mkdir -p {shlex.quote(str(logs))}",
             'case "${SLURM_ARRAY_TASK_ID:?submit with sbatch, or set SLURM_ARRAY_TASK_ID}" in']
    for i, run in enumerate(runs):
        cmd = " ".join([python, *map(shlex.quote, _run_command(run.plan_file)[1:])])
        lines.append(f"  {i}) {cmd} ;;  # {run.spec.name}")
    lines += ['  *) echo "no run for array index $SLURM_ARRAY_TASK_ID (0-' f'{len(runs) - 1})" >&2; exit 2 ;;',
              "esac"]
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    path.chmod(0o755)
    return path


# ---------------------------------------------------------------------------------------------------------- tables

def _checkpoint_seed(files: tuple[str, ...]) -> int | None:
    from ignn_lab.models.checkpoint import read_checkpoint

    for f in files:
        try:
            prov = read_checkpoint(f).get("provenance", {})
        except Exception:  # noqa: BLE001 - a released .pth records no seed; any unreadable file neither
            continue
        seed = (prov.get("train_config") or {}).get("seed") if isinstance(prov, dict) else None
        if seed is not None:
            return int(seed)
    return None


def _cells(spec: TableSpec, runs: dict[str, PlannedRun], out: Path) -> list[dict]:
    from ignn_lab.engine.published import read_published
    from ignn_lab.lab.results import read_results

    published = read_published()
    cells, seeds = [], {}
    for i, row in enumerate(spec.rows):
        run = runs[row.run.name]
        res = read_results(run.run_dir)
        record = json.loads((run.run_dir / "run.json").read_text())
        for c in res["summary"]:
            if any(c.get(k) != v for k, v in row.select.items()) or c["set"] not in spec.sets \
                    or c["scale"] not in spec.scales:
                continue
            if c.get("seed") is None and run.spec.files and run.spec.name not in seeds:
                seeds[run.spec.name] = _checkpoint_seed(run.spec.files)
            # a published value covers the whole set: a run on its first images only is not compared with it
            whole = run.spec.parameters.get("limit") is None
            pub = published.get((row.published, c["scale"], c["set"])) if row.published and whole else None
            cells.append({
                "table": spec.name, "profile": spec.profile, "row": row.label, "role": row.role, "order": i,
                "scale": c["scale"], "set": c["set"], "psnr": c["psnr"], "ssim": c["ssim"],
                "n_images": c["n_images"],
                "published_method": pub.method if pub else None, "published_psnr": pub.psnr if pub else None,
                "published_ssim": pub.ssim if pub else None,
                "published_source": pub.source if pub else None,
                "delta_psnr": c["psnr"] - pub.psnr if pub else None,
                "delta_ssim": c["ssim"] - pub.ssim if pub and pub.ssim is not None else None,
                "run": run.spec.name, "run_dir": os.path.relpath(run.run_dir, out), "key": record["key"],
                "commit": record.get("commit"),
                "seed": c.get("seed", seeds.get(run.spec.name))})
    cells.sort(key=lambda c: (spec.scales.index(c["scale"]) if spec.kind == "results" else 0, c["order"],
                              spec.scales.index(c["scale"]), spec.sets.index(c["set"])))
    ref = {(c["scale"], c["set"]): c["psnr"] for c in cells if c["role"] == "reference"}
    for c in cells:
        base = ref.get((c["scale"], c["set"]))
        c["delta_vs_reference"] = None if base is None or spec.kind != "ablation" else c["psnr"] - base
    return cells


def _f(v, fmt: str) -> str:
    return "–" if v is None else format(v, fmt)


def _short(v) -> str:
    if v is None:
        return "–"
    head, _, dirty = str(v).partition("+")
    return head[:10] + ("+" + dirty[:18] if dirty else "")


def _wide(spec: TableSpec, cells: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the readable table: one line per (row, scale), one column per set."""
    by = {(c["row"], c["scale"], c["set"]): c for c in cells}
    lines = list(dict.fromkeys((c["row"], c["scale"]) for c in cells))
    header = ["", "Scale", *spec.sets]
    body = []
    for label, scale in lines:
        vals = []
        for s in spec.sets:
            c = by.get((label, scale, s))
            if c is None:
                vals.append("–")
            elif spec.kind == "ablation":
                vals.append(f"{c['psnr']:.3f}" + ("" if c["role"] == "reference" or c["delta_vs_reference"] is None
                                                  else f" ({c['delta_vs_reference']:+.3f})"))
            else:
                vals.append(f"{c['psnr']:.2f}" + (f" / {c['published_psnr']:.2f} ({c['delta_psnr']:+.2f})"
                                                  if c["published_psnr"] is not None else ""))
        body.append([label, f"×{scale}", *vals])
    seed = {(c["scale"], c["set"]): c for c in cells if c["role"] == "seed"}
    if spec.kind == "ablation" and seed:
        for scale in spec.scales:
            if any((scale, s) in seed for s in spec.sets):
                body.append(["seed spread, abs. Δ (noise)", f"×{scale}",
                             *[_f(abs(seed[(scale, s)]["delta_vs_reference"]), ".3f")
                               if (scale, s) in seed and seed[(scale, s)]["delta_vs_reference"] is not None
                               else "–" for s in spec.sets]])
    return header, body


_LONG = [("row", "Row"), ("scale", "Scale"), ("set", "Set"), ("psnr", "PSNR"), ("ssim", "SSIM"),
         ("published_psnr", "Published"), ("delta_psnr", "ΔPSNR"), ("delta_vs_reference", "Δ vs reference"),
         ("n_images", "Images"), ("run_dir", "Run"), ("key", "Key"), ("commit", "Commit"), ("seed", "Seed")]


def _long_value(c: dict, key: str) -> str:
    v = c[key]
    if key == "scale":
        return f"×{v}"
    if key in ("psnr", "delta_vs_reference"):
        return _f(v, "+.3f" if key.startswith("delta") else ".3f")
    if key == "ssim":
        return f"{v:.4f}"
    if key == "published_psnr":
        return "–" if v is None else f"{v:.2f} ({c['published_method']})"
    if key == "delta_psnr":
        return _f(v, "+.3f")
    if key == "key":
        return v[:12]
    if key == "commit":
        return _short(v)
    if key == "run_dir":
        return f"`{v}`"
    return "–" if v is None else str(v)


def _markdown(spec: TableSpec, cells: list[dict], command: str) -> str:
    header, body = _wide(spec, cells)
    how = ("each cell: PSNR-Y (Δ vs the reference row), dB" if spec.kind == "ablation"
           else "each cell: ours / published (ours − published), PSNR-Y in dB")
    out = [f"# {spec.name} ({spec.profile} profile)", "", f"{spec.title}. Written by `{command}`; {how}."]
    if spec.claim:
        out += ["", spec.claim]
    out += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in body]
    sources: dict[str, list[str]] = {}
    for c in cells:
        if c["published_source"] and c["published_source"] not in sources.setdefault(c["published_method"], []):
            sources[c["published_method"]].append(c["published_source"])
    if sources:
        out += ["", "Published values (shared/reference/published_results.tsv):"]
        out += [f"- {m}: " + "; ".join(v) for m, v in sources.items()]
    out += ["", "## Cells and their provenance", "",
            "| " + " | ".join(t for _, t in _LONG) + " |", "|" + "---|" * len(_LONG)]
    out += ["| " + " | ".join(_long_value(c, k) for k, _ in _LONG) + " |" for c in cells]
    return "\n".join(out) + "\n"


_CSV = ["table", "profile", "row", "role", "scale", "set", "psnr", "ssim", "n_images", "published_method",
        "published_psnr", "published_ssim", "delta_psnr", "delta_ssim", "delta_vs_reference", "run", "run_dir",
        "key", "commit", "seed"]


def _csv(cells: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(_CSV)
    for c in cells:
        w.writerow(["" if c[k] is None else (repr(c[k]) if isinstance(c[k], float) else c[k]) for k in _CSV])
    return buf.getvalue()


def _tex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                 ("×", r"$\times$"), ("Δ", r"$\Delta$"), ("*", r"$^*$")):
        text = text.replace(a, b)
    return text


def _tex(spec: TableSpec, cells: list[dict], command: str) -> str:
    header, body = _wide(spec, cells)
    lines = [f"% {spec.name} ({spec.profile} profile): written by `{command}`; do not edit.",
             "% Cell provenance: row | scale | set | run folder | key | commit | seed"]
    lines += [f"% {c['row']} | x{c['scale']} | {c['set']} | {c['run_dir']} | {c['key']} | {c['commit']} | "
              f"{_f(c['seed'], 'd')}" for c in cells]
    lines += [r"\begin{tabular}{ll" + "c" * len(spec.sets) + "}", r"\toprule",
              " & ".join(_tex_escape(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join(_tex_escape(v) for v in row) + r" \\" for row in body]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def assemble_table(spec: TableSpec, runs: dict[str, PlannedRun], out: str | os.PathLike, *,
                   command: str) -> dict[str, Path]:
    """Write ``out/<table>.md``, ``.csv`` and ``.tex`` from the finished runs (files whose bytes would not
    change are left untouched).

    Returns:
        ``{"md": path, "csv": path, "tex": path}``.
    """
    out = Path(out).resolve()
    cells = _cells(spec, runs, out)
    if not cells:
        raise ValueError(f"table {spec.name}: its runs hold no cell for sets {list(spec.sets)} and scales "
                         f"{list(spec.scales)}")
    paths = {}
    texts = {"md": _markdown(spec, cells, command), "csv": _csv(cells), "tex": _tex(spec, cells, command)}
    for ext, text in texts.items():
        paths[ext] = out / f"{spec.name}.{ext}"
        _write_if_changed(paths[ext], text.encode())
    return paths


# ------------------------------------------------------------------------------------------------------ reproduce

@dataclass
class ReproduceReport:
    """What :func:`reproduce` did: ``pending`` (the runs that were not done), ``executed`` and ``cached`` run
    names, ``failed`` (name -> error), the table files, or the emitted job script."""

    out: Path
    profile: str
    tables: dict[str, dict[str, Path]] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)
    executed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    emitted: Path | None = None
    seconds: float = 0.0


def _table_names(tables: str | Iterable[str]) -> list[str]:
    names = [t.strip() for t in tables.split(",")] if isinstance(tables, str) else [str(t) for t in tables]
    names = list(TABLES) if names == ["all"] else names
    unknown = [t for t in names if t not in TABLES]
    if unknown or not names:
        raise ValueError(f"unknown table(s) {unknown or names}; known: {', '.join(TABLES)}, or all")
    return names


def reproduce(tables: str | Iterable[str] = "all", profile: str = "smoke", *, out: str | os.PathLike | None = None,
              jobs: int = 1, emit_jobs_to: str | os.PathLike | None = None,
              checkpoints: str | os.PathLike | None = None, device: str | None = None,
              data_root: str | os.PathLike | None = None, progress: bool = True, replace_cited: bool = False,
              spec: Callable[..., TableSpec] = table_spec) -> ReproduceReport:
    """Plan, run (or emit) and assemble tables; see the module docstring.

    Args:
        tables: names of :data:`~ignn_lab.lab.tables.TABLES`, comma-separated, or ``all``.
        profile: ``smoke``, ``lite`` or ``paper``.
        out: the output folder (default ``runs/reproduce-<profile>``).
        jobs: runs at once (each in its own process; torch threads shared out between them).
        emit_jobs_to: write a SLURM array script for the runs not done yet instead of running them.
        checkpoints: see :func:`ignn_lab.lab.tables.table_spec`.
        device: where networks run (default ``cuda`` for paper, else ``cpu``).
        data_root: the data root the runs read (``IGNN_LAB_DATA`` for them; not part of the key).
        replace_cited: run (or emit) even when a run's folder holds another key's results that a table in
            ``out`` not asked for now cites (that table then cites evidence that is gone).
        spec: ``(table, profile, checkpoints=, device=) -> TableSpec`` (tests pass small tables).

    Returns:
        A :class:`ReproduceReport`. Tables whose runs all finished are written even when others failed.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an int >= 1, got {jobs!r}")
    t0 = time.perf_counter()
    if spec is table_spec:
        names = _table_names(tables)
    else:
        names = [t.strip() for t in (tables.split(",") if isinstance(tables, str) else tables)]
    out = Path(out or f"runs/reproduce-{profile}").resolve()
    specs = [spec(t, profile, checkpoints=checkpoints, device=device) for t in names]
    planned = plan_runs(specs, out)
    report = ReproduceReport(out, profile)
    todo = [r for r in planned if not r.done()]
    report.cached = [r.spec.name for r in planned if r not in todo]
    report.pending = [r.spec.name for r in todo]
    cited = {} if replace_cited else _cited_elsewhere(out, names, todo)
    if cited:
        said = "; ".join(f"{t} cites {', '.join(rs)}" for t, rs in cited.items())
        raise ValueError(f"running these tables would replace results that other tables in {out} cite ({said}, "
                         f"scored under other keys). Reproduce those tables too ({','.join([*names, *cited])}), "
                         "write to another --out, or pass --replace-cited to let their evidence go")
    def shown(path) -> str:
        rel = os.path.relpath(Path(path).resolve())
        return str(Path(path).resolve()) if rel.startswith("..") else rel

    options = f" --profile {profile} --out {shown(out)}" + (f" --checkpoints {shown(checkpoints)}" if checkpoints
                                                            else "") + (f" --device {device}" if device else "")
    command = f"ignn-lab reproduce {','.join(names)}{options}"
    # each table names the command that writes it alone, so its bytes do not depend on what it was run with
    table_command = "ignn-lab reproduce {}" + options
    if emit_jobs_to is not None:
        if todo:
            report.emitted = emit_jobs(todo, emit_jobs_to, command=command,
                                       device=device or ("cuda" if profile == "paper" else "cpu"))
        report.seconds = time.perf_counter() - t0
        return report
    if todo:
        report.failed = _execute_local(todo, jobs=jobs, data_root=data_root, progress=progress)
        report.executed = [r.spec.name for r in todo if r.spec.name not in report.failed]
    by_name = {r.spec.name: r for r in planned}
    for s in specs:
        if all(by_name[row.run.name].done() for row in s.rows):
            report.tables[s.name] = assemble_table(s, by_name, out, command=table_command.format(s.name))
    report.seconds = time.perf_counter() - t0
    return report
