"""reproduce: keys, the cache, a SLURM script whose lines run locally, assembled tables with provenance."""

import csv
import dataclasses
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from ignn_lab.lab.reproduce import code_commit, execute_plan, plan_runs, reproduce, run_key
from ignn_lab.lab.tables import Row, RunSpec, TableSpec

BICUBIC = RunSpec("bic", "03_evaluate", {"model": "bicubic", "sets": ["Set5"], "scales": [2], "options": {},
                                         "limit": None, "progress": False})
GRAPHAGG = RunSpec("ga", "04_ablate", {"variants": [], "graphagg_variants": ["default"], "sets": ["Set5"],
                                       "scales": [2], "limit": 1, "progress": False})


def _spec_fn(bicubic=BICUBIC, extra=None):
    tables = {"t-results": TableSpec("t-results", "smoke", "bicubic", "results",
                                     (Row("Bicubic", bicubic, {}, "Bicubic"),), ("Set5",), (2,), "a claim"),
              "t-ablation": TableSpec("t-ablation", "smoke", "graphagg", "ablation",
                                      (Row("GraphAgg* default", GRAPHAGG, {"variant": "default"}, None, "reference"),
                                       Row("bicubic", bicubic, {}, "Bicubic")), ("Set5",), (2,)),
              **(extra or {})}

    def spec(table, profile, checkpoints=None, device=None):
        return tables[table]
    return spec


def test_key_depends_on_what_the_run_computes(tmp_path, monkeypatch):
    ckpt = tmp_path / "a.pt"
    ckpt.write_bytes(b"weights")
    run = RunSpec("r", "03_evaluate", {"model": str(ckpt), "sets": ["Set5"], "scales": [2]}, (str(ckpt),))
    key, parts = run_key(run, commit="c1")
    assert parts["parameters"]["model"] == "sha256:" + __import__("hashlib").sha256(b"weights").hexdigest()
    # the same file elsewhere and the parameters in another order: the same key
    moved = tmp_path / "sub" / "b.pt"
    moved.parent.mkdir()
    shutil.copy(ckpt, moved)
    same = RunSpec("r", "03_evaluate", {"scales": [2], "sets": ["Set5"], "model": str(moved)}, (str(moved),))
    assert run_key(same, commit="c1")[0] == key
    assert run_key(run, commit="c2")[0] != key
    assert run_key(RunSpec("r", "03_evaluate", {**run.parameters, "scales": [3]}, run.files), commit="c1")[0] != key
    ckpt.write_bytes(b"other weights")
    assert run_key(run, commit="c1")[0] != key
    ckpt.write_bytes(b"weights")
    # the notebook's bytes
    from ignn_lab.lab.notebooks import notebooks_dir

    nbs = tmp_path / "notebooks"
    shutil.copytree(notebooks_dir(), nbs)
    monkeypatch.setenv("IGNN_LAB_NOTEBOOKS", str(nbs))
    assert run_key(run, commit="c1")[0] == key
    (nbs / "03_evaluate.ipynb").write_text((nbs / "03_evaluate.ipynb").read_text().replace("Evaluate", "Score"))
    assert run_key(run, commit="c1")[0] != key
    with pytest.raises(FileNotFoundError, match="do not exist"):
        run_key(RunSpec("r", "03_evaluate", {}, (str(tmp_path / "none.pt"),)))


def test_code_commit_is_the_last_code_commit():
    commit = code_commit()
    head = subprocess.run(["git", "log", "-1", "--format=%H", "--", "ignn_lab", "notebooks"], capture_output=True,
                          text=True).stdout.strip()
    assert commit is not None and commit.split("+")[0] == head
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "ignn_lab", "notebooks"], capture_output=True,
                           text=True).stdout.strip()
    assert ("+dirty." in commit) == bool(dirty)


def test_plan_refuses_conflicting_runs_and_stale_plans(tmp_path):
    other = RunSpec("bic", "03_evaluate", {**BICUBIC.parameters, "limit": 2})
    specs = [_spec_fn()("t-results", "smoke"), _spec_fn(other)("t-results", "smoke")]
    with pytest.raises(ValueError, match="run 'bic' is defined twice"):
        plan_runs(specs, tmp_path)
    (run,) = plan_runs(specs[:1], tmp_path)
    plan = json.loads(run.plan_file.read_text())
    plan["key"] = "0" * 64
    run.plan_file.write_text(json.dumps(plan))
    with pytest.raises(ValueError, match="the checkout changed since this plan was written"):
        execute_plan(run.plan_file)
    run.plan_file.write_text("{}")
    with pytest.raises(ValueError, match="is not a reproduce plan file"):
        execute_plan(run.plan_file)


def _array_lines(script: str) -> list[str]:
    return re.findall(r"^  (\d+)\) (.+) ;;  # (\S+)$", script, flags=re.M)


def _read_tables(out, names):
    return {f"{n}.{ext}": (out / f"{n}.{ext}").read_bytes() for n in names for ext in ("md", "csv", "tex")}


@pytest.mark.notebooks
def test_emit_run_two_lines_assemble_cache_and_rerun_one(data_root, tmp_path):
    from ignn_lab.engine.evaluate import evaluate
    from ignn_lab.lab.ablate import graphagg_ablation

    out, names = tmp_path / "out", ["t-results", "t-ablation"]
    script = tmp_path / "jobs.sh"
    rep = reproduce(names, "smoke", out=out, emit_jobs_to=script, spec=_spec_fn(), progress=False)
    assert rep.emitted == script and rep.pending == ["bic", "ga"] and not rep.tables
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    lines = _array_lines(script.read_text())
    assert [(i, name) for i, _, name in lines] == [("0", "bic"), ("1", "ga")]
    assert "#SBATCH --array=0-1" in script.read_text()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for index in ("0", "1"):
        proc = subprocess.run(["bash", str(script)], env={**env, "SLURM_ARRAY_TASK_ID": index},
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert subprocess.run(["bash", str(script)], env={**env, "SLURM_ARRAY_TASK_ID": "2"},
                          capture_output=True).returncode == 2

    # the array ran everything: reproduce assembles and runs nothing
    rep = reproduce(names, "smoke", out=out, spec=_spec_fn(), progress=False)
    assert rep.executed == [] and rep.cached == ["bic", "ga"] and set(rep.tables) == set(names)
    first = _read_tables(out, names)
    cells = list(csv.DictReader(open(out / "t-results.csv")))
    direct = evaluate("bicubic", ["Set5"], [2], progress=False)["summary"][0]
    assert len(cells) == 1 and float(cells[0]["psnr"]) == direct["psnr"]
    record = json.loads((out / "runs" / "bic" / "run.json").read_text())
    assert cells[0]["key"] == record["key"] and cells[0]["run_dir"] == "runs/bic"
    assert cells[0]["commit"] == record["commit"] == code_commit()
    assert cells[0]["published_method"] == "Bicubic" and float(cells[0]["delta_psnr"]) == pytest.approx(
        direct["psnr"] - float(cells[0]["published_psnr"]))
    abl = {c["row"]: c for c in csv.DictReader(open(out / "t-ablation.csv"))}
    ga = graphagg_ablation(["default"], ["Set5"], [2], out=tmp_path / "ga", limit=1, bicubic=False, progress=False)
    assert float(abl["GraphAgg* default"]["psnr"]) == ga["rows"][0]["psnr"]
    assert float(abl["bicubic"]["delta_vs_reference"]) == pytest.approx(direct["psnr"] - ga["rows"][0]["psnr"])
    md = (out / "t-results.md").read_text()
    assert f"Written by `ignn-lab reproduce t-results --profile smoke --out {out}`" in md
    assert "a claim" in md and record["key"][:12] in md and "`runs/bic`" in md

    # nothing changed: no notebook runs, the tables stay byte-identical
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.ipynb")}
    t0 = time.perf_counter()
    rep = reproduce(names, "smoke", out=out, spec=_spec_fn(), progress=False)
    assert rep.executed == [] and time.perf_counter() - t0 < 30
    assert _read_tables(out, names) == first
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.ipynb")} == stamps

    # one parameter changes: only its run runs again; a failing run is reported, the other tables still written
    bic2 = RunSpec("bic", "03_evaluate", {**BICUBIC.parameters, "limit": 2})
    bad = RunSpec("bad", "03_evaluate", {**BICUBIC.parameters, "model": "no-such-model"})
    extra = {"t-bad": TableSpec("t-bad", "smoke", "bad", "results", (Row("x", bad),), ("Set5",), (2,))}
    rep = reproduce([*names, "t-bad"], "smoke", out=out, spec=_spec_fn(bic2, extra), jobs=2, progress=False)
    assert rep.executed == ["bic"] and rep.cached == ["ga"] and list(rep.failed) == ["bad"]
    assert "bad.log" in rep.failed["bad"] and "no-such-model" in (out / "runs" / "bad.log").read_text()
    assert set(rep.tables) == set(names)
    (cell,) = csv.DictReader(open(out / "t-results.csv"))
    assert cell["n_images"] == "2" and cell["published_psnr"] == ""  # two images are not the published set
    assert (out / "t-ablation.csv").read_bytes() != first["t-ablation.csv"]  # its bicubic row changed
    ga_rows = [c for c in csv.DictReader(open(out / "t-ablation.csv")) if c["run"] == "ga"]
    assert ga_rows[0]["psnr"] == abl["GraphAgg* default"]["psnr"]


def test_a_run_cited_by_another_table_is_not_replaced_silently(tmp_path):
    """A table in OUT that is not asked for now cites run ``bic`` under an older key: running ``bic`` again would
    empty the folder that table points to, so reproduce refuses, says which, and goes on when told to."""
    out, script = tmp_path / "out", tmp_path / "jobs.sh"
    out.mkdir()
    header = "table,row,run,run_dir,key\n"
    (out / "t-old.csv").write_text(header + "t-old,Bicubic,bic,runs/bic,0123abcd\n")
    (out / "t-unrelated.csv").write_text(header + "t-unrelated,x,other,runs/other,0123abcd\n")
    with pytest.raises(ValueError, match=r"t-old cites bic.*\(t-results,t-old\).*--replace-cited"):
        reproduce(["t-results"], "smoke", out=out, emit_jobs_to=script, spec=_spec_fn(), progress=False)
    assert not script.exists()
    rep = reproduce(["t-results", "t-old"], "smoke", out=out, emit_jobs_to=script, progress=False,
                    spec=_spec_fn(extra={"t-old": dataclasses.replace(_spec_fn()("t-results", "smoke"), name="t-old")}))
    assert rep.emitted == script
    script.unlink()
    rep = reproduce(["t-results"], "smoke", out=out, emit_jobs_to=script, spec=_spec_fn(), progress=False,
                    replace_cited=True)
    assert rep.emitted == script and rep.pending == ["bic"]


def test_cli_reproduce_errors(tmp_path, capsys):
    from ignn_lab.cli import main

    assert main(["reproduce", "nosuch", "--out", str(tmp_path)]) == 2
    assert "unknown table(s) ['nosuch']; known: bicubic, main" in capsys.readouterr().err
    assert main(["reproduce", "main", "--profile", "paper", "--out", str(tmp_path)]) == 2
    assert "IGNN_x2.pth" in capsys.readouterr().err
    assert main(["reproduce", "all", "--profile", "smoke", "--train-commands"]) == 2
    assert main(["run-notebook"]) == 2
    assert "needs NAME and --out" in capsys.readouterr().err
    assert main(["run-notebook", "03_evaluate", "--plan", str(tmp_path / "p.json")]) == 2


def test_cli_prints_train_commands(capsys):
    from ignn_lab.cli import main

    assert main(["reproduce", "embedding", "--profile", "lite", "--train-commands"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("#!/usr/bin/env bash") and text.count("\ntrain ") == 3


@pytest.mark.slow
@pytest.mark.notebooks
def test_reproduce_all_smoke(data_root, tmp_path):
    """Every table of the smoke profile, then a second run that runs nothing and changes no byte."""
    from ignn_lab.lab.tables import TABLES

    out = tmp_path / "smoke"
    t0 = time.perf_counter()
    rep = reproduce("all", "smoke", out=out, jobs=2, progress=False)
    print(f"reproduce all --profile smoke: {len(rep.executed)} runs in {time.perf_counter() - t0:.0f} s")
    assert not rep.failed and set(rep.tables) == set(TABLES)
    first = _read_tables(out, TABLES)
    rep = reproduce("all", "smoke", out=out, jobs=2, progress=False)
    assert rep.executed == [] and _read_tables(out, TABLES) == first


def test_cli_emits_the_paper_array(tmp_path, capsys):
    from ignn_lab.cli import main

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for s in (2, 3, 4):
        (ckpt / f"IGNN_x{s}.pth").write_bytes(f"released x{s}".encode())
    script = tmp_path / "main.sbatch"
    assert main(["reproduce", "main", "--profile", "paper", "--checkpoints", str(ckpt), "--out", str(tmp_path / "o"),
                 "--emit-jobs", str(script)]) == 0
    assert "a SLURM array of 7 run(s)" in capsys.readouterr().out  # bicubic, IGNN and IGNN+ at x2, x3, x4
    text = script.read_text()
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert "#SBATCH --array=0-6" in text and "#SBATCH --gres=gpu:1" in text
    assert [name for _, _, name in _array_lines(text)] == [
        "paper-bicubic", "paper-IGNN_x2", "paper-IGNN_x2-x8", "paper-IGNN_x3", "paper-IGNN_x3-x8", "paper-IGNN_x4",
        "paper-IGNN_x4-x8"]
    plan = json.loads((tmp_path / "o" / "plan" / "paper-IGNN_x3-x8.json").read_text())
    assert plan["spec"]["parameters"]["options"] == {"device": "cuda", "self_ensemble": True}
    assert plan["key_parts"]["parameters"]["model"].startswith("sha256:")
