"""The reproduce spec: every table plans in every profile, and the ablation configs are one-switch variants."""

import json
import subprocess

import pytest

from ignn_lab.engine.train_config import list_configs, load_config
from ignn_lab.lab.tables import (ABLATION_ROWS, LITE_BUDGET, PROFILES, SMOKE_BUDGET, TABLES, VARIANTS,
                                 lite_train_commands, lite_variant_runs, table_spec)


def _fake_checkpoints(root, names=("edsr-lite-x2", "ignn-lite-x2", "ignn-lite-x3", "ignn-lite-x4")):
    for name in names:
        (root / f"{name}.pt").write_bytes(name.encode())
    for name in lite_variant_runs():
        (root / name).mkdir()
        (root / name / "best.pt").write_bytes(name.encode())
    for s in (2, 3, 4):
        (root / f"IGNN_x{s}.pth").write_bytes(b"released")
    return root


@pytest.mark.parametrize("profile", PROFILES)
def test_every_table_has_rows_in_every_profile(profile, tmp_path):
    ckpt = _fake_checkpoints(tmp_path)
    for table in TABLES:
        spec = table_spec(table, profile, checkpoints=ckpt)
        assert spec.rows and spec.sets == (("Set5",) if profile == "smoke" else ("Set5", "Set14", "B100", "Urban100"))
        for row in spec.rows:
            assert row.run.notebook in ("02_train", "03_evaluate", "04_ablate") and not row.run.needs
            assert "out" not in row.run.parameters
        if spec.kind == "ablation":
            assert sum(r.role == "reference" for r in spec.rows) == 1
    main = table_spec("main", profile, checkpoints=ckpt)
    assert {r.label.rstrip("+").split("-")[0] for r in main.rows} == {"Bicubic", "EDSR", "IGNN"} - (
        {"EDSR"} if profile == "paper" else set())
    assert {r.published for r in main.rows if r.label.endswith("+")} == {None}


def test_lite_needs_the_trained_models_and_says_how(tmp_path, monkeypatch):
    from ignn_lab.lab.reproduce import plan_runs
    from ignn_lab.models import pretrained

    monkeypatch.setattr(pretrained, "weights_dir", lambda: tmp_path / "no-weights")  # as if nothing shipped

    with pytest.raises(ValueError, match="ignn-lite-x3 is not shipped.*`ignn-lab train --config lite-x3 --out "
                                         "runs/train/ignn-lite-x3`"):
        plan_runs([table_spec("main", "lite", checkpoints=tmp_path)], tmp_path / "out")
    with pytest.raises(ValueError, match="lite variant lite-x2-no-adapn is not trained.*--train-commands"):
        plan_runs([table_spec("adapn-ecn", "lite", checkpoints=tmp_path)], tmp_path / "out")
    with pytest.raises(ValueError, match="no IGNN_x2.pth"):
        plan_runs([table_spec("main", "paper")], tmp_path / "out")


def test_unfinished_variant_is_refused(tmp_path):
    """A variant whose last.pt has not reached its last step is not scored (its best.pt is not final)."""
    import torch

    from ignn_lab.lab.training import run_config
    from ignn_lab.models import build
    from ignn_lab.models.checkpoint import save

    ckpt = _fake_checkpoints(tmp_path)
    cfg = run_config("lite-x2", LITE_BUDGET)
    state = {"format": "ignn-lab/train", "version": 1, "step": 10, "config": cfg.to_dict(), "model": {},
             "optimizer": {}, "rng": {"torch": torch.get_rng_state()}}
    save(build("edsr-lite", 2, n_resblocks=1), ckpt / "lite-x2" / "last.pt", training=state)
    spec = table_spec("position", "lite", checkpoints=ckpt)
    assert [r.run.needs[0] for r in spec.rows if r.run.needs] == [
        f"lite variant lite-x2 is not trained to its end in {ckpt / 'lite-x2'}"] * 1


def test_variant_configs_switch_one_thing_of_lite_x2():
    from ignn_lab.models import build

    base = load_config("lite-x2").to_dict()
    configs = {v["lite"]["config"] for v in VARIANTS.values()}
    assert configs <= set(list_configs())
    for name in configs - {"lite-x2"}:
        cfg = load_config(name).to_dict()
        changed = {k for k in base if base[k] != cfg[k]} - {"description"}
        assert changed and changed <= {"model", "model_overrides"}, (name, changed)
        model = build(cfg["model"], cfg["scale"], **cfg["model_overrides"])
        if name == "edsr-lite-x2":
            assert not hasattr(model, "gcn") and not getattr(model, "needs_son", False)
    # the region-level non-local block trains densely: its cell is the training patch
    assert load_config("lite-x2-nonlocal").model_overrides["nonlocal_region"] == load_config("lite-x2").patch_size
    n = build("ignn-lite", 2).config.n_resblocks
    middle = build("ignn-lite", 2).config.position
    early = build("ignn-lite", 2, **load_config("lite-x2-early").model_overrides).config.position
    late = build("ignn-lite", 2, **load_config("lite-x2-late").model_overrides).config.position
    assert (early, middle, late) == (n // 4, n // 2, 3 * n // 4), (
        f"the lite body has {n} blocks: set graph_position to {n // 4} in lite-x2-early.json and {3 * n // 4} in "
        "lite-x2-late.json")
    labels = [r.label for r in table_spec("position", "smoke").rows]
    assert labels[0] == f"early (after block {early} of {n})" and labels[-1] == f"late (after block {late} of {n})"
    paper = [r.label for r in table_spec("position", "paper").rows]
    assert paper[0] == "early (after block 8 of 32)" and paper[1] == "middle (after block 16 of 32; baseline)"


def test_train_commands_cover_every_variant_and_parse(tmp_path):
    script = lite_train_commands(checkpoints=tmp_path / "v")
    path = tmp_path / "train.sh"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    lines = [line for line in script.splitlines() if line.startswith("train ")]
    assert len(lines) == len(lite_variant_runs()) == len({k for rows in ABLATION_ROWS.values() for k, _, _ in rows})
    assert all(f"--set steps={LITE_BUDGET['steps']}" in line for line in lines)
    assert f"train {tmp_path / 'v' / 'lite-x2-seed1'} lite-x2 --set seed=1 " in script
    assert set(lite_variant_runs(["embedding"])) == {"lite-x2", "lite-x2-seed1", "lite-x2-vgg-random"}


def test_variant_folders_never_shadow_a_shipped_checkpoint(tmp_path):
    """``main --checkpoints DIR`` reads ``DIR/NAME/best.pt`` as the shipped NAME: a variant trained in DIR under
    such a name would be scored in the shipped model's place."""
    from ignn_lab.models.pretrained import list_pretrained

    main_names = {"edsr-lite-x2", "ignn-lite-x2", "ignn-lite-x3", "ignn-lite-x4"}
    assert not set(lite_variant_runs()) & (main_names | set(list_pretrained()))
    assert lite_variant_runs(["same-vs-cross"])["lite-x2-no-graph"] == {"config": "edsr-lite-x2", "overrides": {}}
    for name in lite_variant_runs():  # a folder of trained variants, and nothing else
        (tmp_path / name).mkdir()
        (tmp_path / name / "best.pt").write_bytes(name.encode())
    files = {f for row in table_spec("main", "lite", checkpoints=tmp_path).rows for f in row.run.files}
    assert files and not any(str(tmp_path) in f for f in files)


def test_smoke_budget_is_a_valid_override():
    cfg = load_config("smoke", SMOKE_BUDGET)
    assert cfg.steps == SMOKE_BUDGET["steps"] and cfg.train_sets == ("T91",)


def test_train_script_shares_the_work_resumes_and_stops_in_time(tmp_path):
    """Two copies of the script side by side, with a stand-in for ignn-lab that records its calls: every variant
    trains once, a started one resumes, a finished one is not trained again, MINUTES=0 stops at once."""
    import os
    import time

    fake = tmp_path / "fake-ignn-lab"
    calls = tmp_path / "calls.log"
    fake.write_text(f"#!/usr/bin/env bash\nsleep 0.3\necho \"$*\" >> {calls}\n"
                    "echo 'finished at step 2500/2500 (1.0 min in total); best validation PSNR-Y 30.000 dB'\n")
    fake.chmod(0o755)
    script = tmp_path / "train.sh"
    script.write_text(lite_train_commands(["embedding"], checkpoints=tmp_path / "v"))
    (tmp_path / "v" / "lite-x2-seed1").mkdir(parents=True)
    (tmp_path / "v" / "lite-x2-seed1" / "last.pt").write_bytes(b"")
    env = {**os.environ, "IGNN_LAB": str(fake), "MINUTES": "30"}

    t0 = time.perf_counter()
    copies = [subprocess.Popen(["bash", str(script)], env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [c.communicate()[0] for c in copies]
    assert [c.returncode for c in copies] == [0, 0] and time.perf_counter() - t0 < 60
    lines = calls.read_text().splitlines()
    outs_dir = {line.split(" --out ")[1].split()[0] for line in lines}
    assert len(lines) == 3 and outs_dir == {str(tmp_path / "v" / n) for n in ("lite-x2", "lite-x2-seed1",
                                                                                "lite-x2-vgg-random")}
    seed1 = next(line for line in lines if "lite-x2-seed1" in line)
    head, minutes = seed1.rsplit(" --max-minutes ", 1)
    budget = " ".join(f"--set {k}={json.dumps(v)}" for k, v in LITE_BUDGET.items())
    assert head == f"train --config lite-x2 --out {tmp_path / 'v' / 'lite-x2-seed1'} --set seed=1 {budget} --resume"
    assert minutes in ("29 --quiet", "30 --quiet")  # the minutes left of MINUTES=30
    assert sum(o.count(": finished at step") for o in outs) == 3
    assert all((tmp_path / "v" / n / "FINISHED").is_file() for n in ("lite-x2", "lite-x2-vgg-random"))
    # run again: everything finished, nothing is trained
    subprocess.run(["bash", str(script)], env=env, check=True)
    assert len(calls.read_text().splitlines()) == 3
    (tmp_path / "v" / "lite-x2" / "FINISHED").unlink()
    proc = subprocess.run(["bash", str(script)], env={**env, "MINUTES": "0"}, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout == "time is up; run again to continue\n"


def test_run_parameters_are_the_notebooks_own(tmp_path):
    """Every planned run passes only parameters its notebook declares, each of its default's type (or the
    default is None): what papermill injects must be what the parameters cell defines."""
    import ast

    import papermill as pm

    from ignn_lab.lab.notebooks import find_notebook

    declared = {}
    ckpt = _fake_checkpoints(tmp_path)
    for profile in PROFILES:
        for table in TABLES:
            for row in table_spec(table, profile, checkpoints=ckpt).rows:
                nb = row.run.notebook
                if nb not in declared:
                    info = pm.inspect_notebook(str(find_notebook(nb)))
                    declared[nb] = {k: ast.literal_eval(v["default"]) for k, v in info.items()}
                for key, value in row.run.parameters.items():
                    assert key in declared[nb], (nb, key)
                    default = declared[nb][key]
                    if default is not None and value is not None:
                        assert isinstance(value, type(default)) and isinstance(value, bool) == isinstance(
                            default, bool), (nb, key, value, default)
