"""What ``ignn-lab reproduce`` runs: every table's rows, each backed by a notebook run, per profile.

A :class:`TableSpec` lists :class:`Row` s; each row names a :class:`RunSpec` (a notebook of ``notebooks/`` and
its papermill parameters) and which cells of that run's ``results.json`` summary it shows. Runs are shared
between tables by name (the ×2 baseline variant backs a row of every ablation table, bicubic backs ``bicubic``
and ``main``), and :mod:`ignn_lab.lab.reproduce` runs each once.

Profiles:

* ``smoke`` proves the plumbing in minutes on a CPU: Set5 (first :data:`SMOKE_LIMIT` images), every network
  trained inside its run for :data:`SMOKE_BUDGET`.
* ``lite`` is the CPU study on the four sets: ``main`` scores the shipped checkpoints
  (:func:`ignn_lab.models.pretrained.list_pretrained`, or ``--checkpoints DIR``); the ablation tables score the
  ``lite-x2*`` variants trained beforehand with ``ignn-lab train`` for :data:`LITE_BUDGET` into
  ``--checkpoints DIR/<run>`` (default :data:`LITE_VARIANT_DIR`); :func:`lite_train_commands` prints the
  commands.
* ``paper`` is the paper's configuration: ``main`` scores the released ``IGNN_x{2,3,4}.pth`` of ``--checkpoints
  DIR`` (and a kit ``EDSR_x{s}.pt`` where one is there); the ablations train ``paper-x2`` variants on a GPU.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PROFILES", "TABLES", "SMOKE_BUDGET", "SMOKE_LIMIT", "LITE_BUDGET", "LITE_VARIANT_DIR", "VARIANTS",
           "RunSpec", "Row", "TableSpec", "table_spec", "lite_variant_runs", "lite_train_commands"]

PROFILES = ("smoke", "lite", "paper")
TABLES = ("bicubic", "main", "adapn-ecn", "position", "k-window", "same-vs-cross", "embedding", "graphagg-star")
FOUR_SETS = ("Set5", "Set14", "B100", "Urban100")
SCALES = (2, 3, 4)
#: Images per set in the smoke profile.
SMOKE_LIMIT = 1
#: Config overrides of every network trained in the smoke profile: seconds per run.
SMOKE_BUDGET = {"steps": 20, "batch": 4, "patch_size": 24, "train_sets": ["T91"], "val_count": 1,
                "warmup_steps": 5, "val_every": 20, "log_every": 10, "save_every": 20}
#: Config overrides of every lite ablation variant: the same steps for all (see docs/lab.md for the sizing).
LITE_BUDGET = {"steps": 1000, "warmup_steps": 100, "ema_decay": 0.995}
#: Where the lite ablation variants are trained (``--checkpoints`` overrides it): ``<dir>/<run>/best.pt``.
LITE_VARIANT_DIR = "runs/lite-ablation"

def _variant(lite_config: str, paper: dict | None = None, *, run: str | None = None,
             **paper_model_overrides) -> dict:
    """A learned variant: its lite config, and its switch on ``paper-x2`` (config fields, or model fields).

    ``run`` names the lite variant's folder when the config's own name would be taken: a folder named like a
    shipped checkpoint (``edsr-lite-x2``) would be found by ``main --checkpoints`` in its place."""
    over = dict(paper or {})
    if paper_model_overrides:
        over["model_overrides"] = paper_model_overrides
    lite = {"config": lite_config, "overrides": {}, **({"run": run} if run else {})}
    return {"lite": lite, "paper": {"config": "paper-x2", "overrides": over}}


#: The learned variants: key -> {kind: {"config": train config, "overrides": {...}}}. ``lite`` is used by the
#: smoke and lite profiles (smoke adds SMOKE_BUDGET), ``paper`` by the paper profile.
VARIANTS: dict[str, dict[str, dict]] = {
    "baseline": _variant("lite-x2"),
    "baseline-seed1": {"lite": {"config": "lite-x2", "overrides": {"seed": 1}},
                       "paper": {"config": "paper-x2", "overrides": {"seed": 1}}},
    "no-adapn": _variant("lite-x2-no-adapn", adapn=False),
    "uniform": _variant("lite-x2-uniform", edge_weighting="uniform"),
    "distance": _variant("lite-x2-distance", edge_weighting="distance"),
    "early": _variant("lite-x2-early", graph_position=8),
    "late": _variant("lite-x2-late", graph_position=24),
    "k-fewer": _variant("lite-x2-k1", k=1),
    "k-more": _variant("lite-x2-k5", k=10),
    "window-smaller": _variant("lite-x2-window4", window=15),
    "window-larger": _variant("lite-x2-window16", window=60),
    "same-scale": _variant("lite-x2-same-scale", cross_scale=False),
    "nonlocal": _variant("lite-x2-nonlocal", {"model": "nonlocal"}),
    "no-graph": _variant("edsr-lite-x2", {"model": "edsr"}, run="lite-x2-no-graph"),
    "other-embedding": _variant("lite-x2-vgg-random", embedding="pixel"),
}

def _both(label: str) -> dict[str, str]:
    return {"lite": label, "paper": label}


#: Ablation tables: (variant, row label per variant kind, role). Role "reference": the row the others are
#: compared with; "seed": the reference trained with another seed (its difference is the noise estimate).
_SEED_ROW = ("baseline-seed1", _both("baseline, seed 1"), "seed")
ABLATION_ROWS: dict[str, list[tuple[str, dict[str, str], str]]] = {
    "adapn-ecn": [("baseline", _both("AdaPN + ECN (baseline)"), "reference"),
                  _SEED_ROW,
                  ("no-adapn", _both("no AdaPN"), ""),
                  ("uniform", _both("uniform weights (no ECN)"), ""),
                  ("distance", _both("distance weights (no ECN)"), "")],
    # lite: {position} / {blocks} / {region} are read from the variant's network (the lite body may change)
    "position": [("early", {"lite": "early (after block {position} of {blocks})",
                            "paper": "early (after block 8 of 32)"}, ""),
                 ("baseline", {"lite": "middle (after block {position} of {blocks}; baseline)",
                               "paper": "middle (after block 16 of 32; baseline)"}, "reference"),
                 _SEED_ROW,
                 ("late", {"lite": "late (after block {position} of {blocks})",
                           "paper": "late (after block 24 of 32)"}, "")],
    "k-window": [("baseline", {"lite": "k = 3, window 8 (baseline)", "paper": "k = 5, window 30 (baseline)"},
                  "reference"),
                 _SEED_ROW,
                 ("k-fewer", _both("k = 1"), ""),
                 ("k-more", {"lite": "k = 5", "paper": "k = 10"}, ""),
                 ("window-smaller", {"lite": "window 4", "paper": "window 15"}, ""),
                 ("window-larger", {"lite": "window 16", "paper": "window 60"}, "")],
    "same-vs-cross": [("baseline", _both("cross-scale graph (baseline)"),
                       "reference"),
                      _SEED_ROW,
                      ("same-scale", _both("same-scale graph"), ""),
                      ("nonlocal", {"lite": "non-local block (within {region}² cells)",
                                    "paper": "non-local block (dense)"}, ""),
                      ("no-graph", {"lite": "no graph (EDSR-lite)", "paper": "no graph (EDSR)"}, "")],
    "embedding": [("baseline", {"lite": "pixel (baseline)", "paper": "vgg-random (baseline)"}, "reference"),
                  _SEED_ROW,
                  ("other-embedding", {"lite": "vgg-random", "paper": "pixel"}, "")],
}

#: The paper's stated findings each table is set against (None: the paper states none for it).
CLAIMS = {
    "bicubic": "The published bicubic values were scored with the same protocol: ours should agree with them up "
               "to their two-decimal rounding.",
    "main": "The published values put IGNN above EDSR on every set and scale, by the most on Urban100; the paper "
            "reports IGNN+ (×8 self-ensemble) above IGNN.",
    "adapn-ecn": "The paper states that AdaPN and the edge-conditioned weights (ECN) each help.",
    "position": "The paper finds the graph best in the middle of the body.",
    "k-window": None,
    "same-vs-cross": "The paper states that cross-scale neighbours beat same-scale neighbours and a non-local block.",
    "embedding": None,
    "graphagg-star": None,
}
TITLES = {
    "bicubic": "Bicubic upsampling (PSNR-Y / SSIM-Y)",
    "main": "Bicubic, EDSR, IGNN and IGNN+ (PSNR-Y / SSIM-Y)",
    "adapn-ecn": "Ablation: AdaPN and edge weighting (ECN)",
    "position": "Ablation: graph position",
    "k-window": "Ablation: neighbours k and search window",
    "same-vs-cross": "Ablation: cross-scale vs same-scale graph, non-local block, no graph",
    "embedding": "Ablation: matching embedding",
    "graphagg-star": "GraphAgg* (nothing learned): one option at a time",
}


@dataclass(frozen=True)
class RunSpec:
    """One papermill run: ``notebook`` with ``parameters`` (``out`` is added: the run's folder). ``files`` are the
    checkpoints it reads (their SHA-256 is part of the run's key); ``needs`` says how to make a missing one."""

    name: str
    notebook: str
    parameters: dict
    files: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Row:
    """A table row: the ``results.json`` summary cells of ``run`` whose entries equal ``select``."""

    label: str
    run: RunSpec
    select: dict = field(default_factory=dict)
    published: str | None = None
    role: str = ""


@dataclass(frozen=True)
class TableSpec:
    name: str
    profile: str
    title: str
    kind: str  # "results": ours vs published; "ablation": every row vs the reference row
    rows: tuple[Row, ...]
    sets: tuple[str, ...]
    scales: tuple[int, ...]
    claim: str | None = None


def _sets(profile: str) -> list[str]:
    return ["Set5"] if profile == "smoke" else list(FOUR_SETS)


def _limit(profile: str) -> int | None:
    return SMOKE_LIMIT if profile == "smoke" else None


def _device(profile: str, device: str | None) -> str:
    return device or ("cuda" if profile == "paper" else "cpu")


def _evaluate_run(name: str, model: str, profile: str, scales, *, options: dict | None = None,
                  files: tuple[str, ...] = (), needs: tuple[str, ...] = (), limit: bool = True) -> RunSpec:
    params = {"model": model, "sets": _sets(profile), "scales": [int(s) for s in scales],
              "options": dict(options or {}), "limit": _limit(profile) if limit else None, "progress": False}
    return RunSpec(name, "03_evaluate", params, files, needs)


def _bicubic_run(profile: str) -> RunSpec:
    # Bicubic takes a second per set: the smoke profile scores the whole of Set5.
    return _evaluate_run(f"{profile}-bicubic", "bicubic", profile, SCALES, limit=False)


def _smoke_train_run(model: str, scale: int) -> RunSpec:
    params = {"config": "smoke", "overrides": {**SMOKE_BUDGET, "model": model, "scale": scale},
              "sets": _sets("smoke"), "limit": SMOKE_LIMIT, "self_ensemble": model.startswith("ignn"),
              "resume": "auto", "live": False, "progress": False}
    return RunSpec(f"smoke-train-{model}-x{scale}", "02_train", params)


def _checkpoint_file(name: str, checkpoints: str | os.PathLike | None) -> Path | None:
    """A shipped checkpoint ``name``: ``DIR/name.pt`` or ``DIR/name/best.pt`` of ``--checkpoints``, else the
    package's own."""
    from ignn_lab.models.pretrained import pretrained_path

    if checkpoints is not None:
        for cand in (Path(checkpoints) / f"{name}.pt", Path(checkpoints) / name / "best.pt"):
            if cand.is_file():
                return cand.resolve()
    return pretrained_path(name)


def _shipped_run(name: str, scale: int, checkpoints, *, plus: bool = False) -> RunSpec:
    path = _checkpoint_file(name, checkpoints)
    model, base = name.split("-x")[0], f"lite-x{scale}"
    config = base if model == "ignn-lite" else f"edsr-lite-x{scale}"
    how = (f"{name} is not shipped (ignn_lab/weights/{name}.pt) nor in --checkpoints: train it with `ignn-lab train "
           f"--config {config} --out runs/train/{name}` and copy its best.pt to ignn_lab/weights/{name}.pt "
           f"(or pass --checkpoints DIR holding {name}.pt)")
    return _evaluate_run(f"lite-{name}{'-x8' if plus else ''}", str(path) if path else f"<missing {name}>",
                         "lite", [scale], options={"self_ensemble": True} if plus else None,
                         files=(str(path),) if path else (), needs=() if path else (how,))


def _released_run(file: str, scale: int, checkpoints, device: str, *, plus: bool = False,
                  required: bool = True) -> RunSpec | None:
    if checkpoints is None:
        path = None
    else:
        path = (Path(checkpoints) / file).resolve()
        path = path if path.is_file() else None
    if path is None and not required:
        return None
    how = (f"no {file} in --checkpoints" if checkpoints is not None else f"no {file}",
           "The paper profile scores the released sczhou/IGNN checkpoints: pass --checkpoints DIR holding "
           "IGNN_x2.pth, IGNN_x3.pth and IGNN_x4.pth")
    opts = {"device": device, **({"self_ensemble": True} if plus else {})}
    return _evaluate_run(f"paper-{Path(file).stem}{'-x8' if plus else ''}", str(path) if path else f"<missing {file}>",
                         "paper", [scale], options=opts, files=(str(path),) if path else (),
                         needs=() if path else how)


def _main_rows(profile: str, checkpoints, device: str) -> list[Row]:
    rows = [Row("Bicubic", _bicubic_run(profile), {}, "Bicubic")]
    for s in SCALES:
        if profile == "smoke":
            ignn, edsr = _smoke_train_run("ignn-lite", s), _smoke_train_run("edsr-lite", s)
            rows += [Row("EDSR-lite", edsr, {"model": "edsr-lite"}, "EDSR"),
                     Row("IGNN-lite", ignn, {"model": "ignn-lite"}, "IGNN"),
                     Row("IGNN-lite+", ignn, {"model": "ignn-lite+"}, None)]
        elif profile == "lite":
            if s == 2:
                rows.append(Row("EDSR-lite", _shipped_run("edsr-lite-x2", 2, checkpoints), {}, "EDSR"))
            rows += [Row("IGNN-lite", _shipped_run(f"ignn-lite-x{s}", s, checkpoints), {}, "IGNN"),
                     Row("IGNN-lite+", _shipped_run(f"ignn-lite-x{s}", s, checkpoints, plus=True), {}, None)]
        else:
            edsr = _released_run(f"EDSR_x{s}.pt", s, checkpoints, device, required=False)
            if edsr is not None:
                rows.append(Row("EDSR", edsr, {}, "EDSR"))
            rows += [Row("IGNN", _released_run(f"IGNN_x{s}.pth", s, checkpoints, device), {}, "IGNN"),
                     Row("IGNN+", _released_run(f"IGNN_x{s}.pth", s, checkpoints, device, plus=True), {}, None)]
    return rows


def _variant_run_name(variant: dict) -> str:
    if variant.get("run"):
        return variant["run"]
    seed = variant.get("overrides", {}).get("seed")
    return variant["config"] + (f"-seed{seed}" if seed else "")


def lite_variant_runs(tables=None) -> dict[str, dict]:
    """The lite ablation variants the given tables need (default: all): run name -> ``{"config", "overrides"}``,
    the run name also being the folder it trains into under ``--checkpoints``."""
    keys = dict.fromkeys(v for t in (tables or ABLATION_ROWS) if t in ABLATION_ROWS for v, _, _ in ABLATION_ROWS[t])
    out = {}
    for key in keys:
        v = VARIANTS[key]["lite"]
        out[_variant_run_name(v)] = {"config": v["config"], "overrides": dict(v.get("overrides", {}))}
    return out


def lite_train_commands(tables=None, *, checkpoints: str | os.PathLike | None = None, threads: int = 1) -> str:
    """A bash script that trains (or continues) every lite ablation variant the tables need, each to its end,
    within ``MINUTES`` of wall time (then it stops, saving ``last.pt``; run it again to go on). Copies run side
    by side share the work: each trains the next variant that no other copy holds (``flock``)."""
    root = Path(checkpoints or LITE_VARIANT_DIR)
    lines = ["#!/usr/bin/env bash",
             "# Trains the lite ablation variants that `ignn-lab reproduce --profile lite` scores (written by",
             "# `ignn-lab reproduce TABLE --profile lite --train-commands`); each to its end, resumable.",
             f"# Budget of every variant: {LITE_BUDGET} on top of its config (ignn_lab.lab.tables.LITE_BUDGET).",
             "#   MINUTES=240 bash THIS & MINUTES=240 bash THIS & wait",
             "#       two copies, one single-thread run per core; each takes the next variant no copy is training",
             "#       (a lock file per run folder) and stops after MINUTES with last.pt saved: run again to go on.",
             "#   IGNN_LAB='python -m ignn_lab.cli'   when the ignn-lab command is not installed.",
             "set -euo pipefail",
             f"export OMP_NUM_THREADS=${{OMP_NUM_THREADS:-{threads}}}",
             "IGNN_LAB=${IGNN_LAB:-ignn-lab}",
             "DEADLINE=$(( $(date +%s) + 60 * ${MINUTES:-100000} ))",
             "train() {  # train OUT CONFIG [--set KEY=VALUE ...]",
             "  local out=$1 config=$2 left said; shift 2",
             "  mkdir -p \"$out\"",
             "  [ -f \"$out/FINISHED\" ] && return 0",
             "  exec 9>\"$out/.train.lock\"",
             "  if ! flock -n 9; then exec 9>&-; return 0; fi  # another copy trains it",
             "  if [ -f \"$out/FINISHED\" ]; then exec 9>&-; return 0; fi  # it finished while we looked",
             "  left=$(( (DEADLINE - $(date +%s)) / 60 ))",
             "  if [ \"$left\" -lt 1 ]; then echo \"time is up; run again to continue\"; exit 0; fi",
             "  local resume=(); [ -f \"$out/last.pt\" ] && resume=(--resume)",
             "  said=$($IGNN_LAB train --config \"$config\" --out \"$out\" \"$@\" ${resume[@]+\"${resume[@]}\"} \\",
             "    --max-minutes \"$left\" --quiet)",
             "  echo \"$out: $said\"",
             "  case \"$said\" in finished*) touch \"$out/FINISHED\" ;; esac",
             "  exec 9>&-",
             "}"]
    for name, v in lite_variant_runs(tables).items():
        sets = [f"--set {k}={json.dumps(v2)}" for k, v2 in {**v["overrides"], **LITE_BUDGET}.items()]
        lines.append(f"train {shlex.quote(str(root / name))} {v['config']} {' '.join(sets)}")
    return "\n".join(lines) + "\n"


def _ablation_rows(table: str, profile: str, checkpoints, device: str) -> list[Row]:
    kind = "paper" if profile == "paper" else "lite"
    rows = []
    for key, labels, role in ABLATION_ROWS[table]:
        v = VARIANTS[key][kind]
        name = _variant_run_name(v)
        variants = {name: {"config": v["config"], "overrides": dict(v.get("overrides", {}))}}
        params = {"variants": variants, "graphagg_variants": [], "sets": _sets(profile), "limit": _limit(profile),
                  "device": device, "progress": False}
        files, needs = (), ()
        if profile == "smoke":
            params["budget"] = dict(SMOKE_BUDGET)
        elif profile == "paper":
            params["budget"] = {}
        else:
            params["budget"] = dict(LITE_BUDGET)
            ckpt = Path(checkpoints or LITE_VARIANT_DIR) / name / "best.pt"
            if _unfinished(ckpt.parent) or not ckpt.is_file():
                needs = (f"lite variant {name} is not trained to its end in {ckpt.parent}",
                         "`ignn-lab reproduce TABLE --profile lite --train-commands` prints the commands that "
                         "train them (resumable)")
            else:
                files = (str(ckpt.resolve()),)
                params["checkpoints"] = {name: str(ckpt.resolve())}
        run = RunSpec(f"{profile}-ablate-{name}" if kind == "lite" else f"paper-ablate-{key}", "04_ablate", params,
                      files, needs)
        rows.append(Row(_label(labels[kind], v), run, {"variant": name}, None, role))
    return rows


def _label(text: str, variant: dict) -> str:
    """A row label; ``{position}``, ``{blocks}`` and ``{region}`` are read from the variant's network."""
    if "{" not in text:
        return text
    from ignn_lab.lab.training import run_config
    from ignn_lab.models import build

    cfg = run_config(variant["config"], variant.get("overrides"))
    net = build(cfg.model, cfg.scale, **cfg.model_overrides).config
    return text.format(position=getattr(net, "position", None), blocks=net.n_resblocks,
                       region=getattr(net, "nonlocal_region", None))


def _unfinished(run_dir: Path) -> bool:
    """True when ``run_dir/last.pt`` exists and has not reached its config's last step."""
    from ignn_lab.engine.train import read_training_state

    last = run_dir / "last.pt"
    if not last.is_file():
        return False
    state = read_training_state(last)
    return int(state["step"]) < int(state["config"]["steps"])


def _graphagg_rows(profile: str) -> list[Row]:
    from ignn_lab.lab.ablate import DEFAULT_VARIANTS

    # One run for all variants: GraphAgg* is cheap next to a notebook start, and its bicubic floor comes along.
    params = {"variants": [], "graphagg_variants": list(DEFAULT_VARIANTS), "sets": _sets(profile),
              "scales": list(SCALES), "limit": _limit(profile), "progress": False}
    run = RunSpec(f"{profile}-graphagg", "04_ablate", params)
    return [Row(v, run, {"variant": v}, "Bicubic" if v == "bicubic" else None, "reference" if v == "default" else "")
            for v in ("bicubic", *DEFAULT_VARIANTS)]


def table_spec(table: str, profile: str, *, checkpoints: str | os.PathLike | None = None,
               device: str | None = None) -> TableSpec:
    """The rows of ``table`` in ``profile`` (see the module docstring).

    Args:
        checkpoints: lite: a folder with ``NAME.pt`` / ``NAME/best.pt`` shipped-name checkpoints (``main``) and the
            trained ablation variants (``<run>/best.pt``, default :data:`LITE_VARIANT_DIR`); paper: the folder
            of the released ``IGNN_x{s}.pth``.
        device: where networks run (default: ``cuda`` for paper, else ``cpu``).
    """
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; known: {', '.join(TABLES)}, or all")
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    dev = _device(profile, device)
    sets = tuple(_sets(profile))
    if table == "bicubic":
        rows, kind, scales = [Row("Bicubic", _bicubic_run(profile), {}, "Bicubic")], "results", SCALES
    elif table == "main":
        rows, kind, scales = _main_rows(profile, checkpoints, dev), "results", SCALES
    elif table == "graphagg-star":
        rows, kind, scales = _graphagg_rows(profile), "ablation", SCALES
    else:
        rows, kind, scales = _ablation_rows(table, profile, checkpoints, dev), "ablation", (2,)
    claim = CLAIMS[table]
    if table == "main" and profile != "paper":
        claim += (" The published EDSR and IGNN are the paper-size networks trained on DIV2K; the -lite rows are the "
                  "kit's CPU-trained models, so their Δ is the distance to those, not a reproduction.")
    return TableSpec(table, profile, TITLES[table], kind, tuple(rows), sets, tuple(scales), claim)
