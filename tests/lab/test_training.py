"""Train-then-score (02_train's library side): resume modes, the scored best.pt, live curves."""

import json
import time

import pytest

from ignn_lab.lab.results import check_results
from ignn_lab.lab.training import LiveCurves, curves_png, evaluate_checkpoint, fit_or_resume, run_config

#: A run of seconds: a one-block EDSR-lite on T91 patches.
TINY = {"model": "edsr-lite", "model_overrides": {"n_resblocks": 1}, "train_sets": ["T91"], "val_count": 1,
        "patch_size": 16, "batch": 2, "steps": 3, "warmup_steps": 1, "val_every": 3, "log_every": 1,
        "save_every": 3}


def _steps_logged(out):
    return [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()
            if "loss" in json.loads(line)]


def test_run_config_takes_set_strings_and_steps():
    cfg = run_config("smoke", ["model_overrides.k=5", "batch=2"], steps=7)
    assert (cfg.model_overrides, cfg.batch, cfg.steps) == ({"k": 5}, 2, 7)
    with pytest.raises(ValueError, match="unknown train config key"):
        run_config("smoke", {"stepz": 3})


def test_resume_modes(data_root, tmp_path):
    from ignn_lab.engine.train import read_training_state

    cfg = run_config("smoke", TINY)
    first = fit_or_resume(cfg, tmp_path, resume="auto", progress=False)
    assert (first.status, first.step) == ("finished", 3)
    stamp = (tmp_path / "last.pt").stat().st_mtime_ns
    again = fit_or_resume(cfg, tmp_path, resume="auto", progress=False)
    # finished: read back, not trained again
    assert (again.step, again.best_psnr) == (3, first.best_psnr)
    assert (tmp_path / "last.pt").stat().st_mtime_ns == stamp
    longer = fit_or_resume(cfg.replace(steps=5), tmp_path, resume="auto", progress=False)
    assert longer.step == 5 and _steps_logged(tmp_path) == [1, 2, 3, 4, 5]
    # a change that alters what was computed: "auto" starts afresh, True refuses, False refuses the folder
    with pytest.raises(ValueError, match="only .* may change"):
        fit_or_resume(cfg.replace(steps=5, lr=1e-4), tmp_path, resume=True, progress=False)
    for fresh_only in (False, None):
        with pytest.raises(ValueError, match="already holds a run"):
            fit_or_resume(cfg, tmp_path, resume=fresh_only, progress=False)
    fresh = fit_or_resume(cfg.replace(lr=1e-4), tmp_path, resume="auto", progress=False)
    assert fresh.step == 3 and _steps_logged(tmp_path) == [1, 2, 3]
    assert read_training_state(tmp_path / "last.pt")["config"]["lr"] == 1e-4
    with pytest.raises(ValueError, match="resume must be one of"):
        fit_or_resume(cfg, tmp_path, resume="yes")


def test_scored_checkpoint_equals_direct_evaluation(data_root, tmp_path):
    from ignn_lab.engine.evaluate import evaluate
    from ignn_lab.lab.training import train_and_evaluate

    res = train_and_evaluate("smoke", tmp_path / "run", overrides=TINY, sets=["Set5"], limit=1,
                             self_ensemble=True, label="tiny", progress=False)
    check_results(res)
    assert json.loads((tmp_path / "run" / "results.json").read_text()) == json.loads(json.dumps(res))
    best = tmp_path / "run" / "best.pt"
    plain = evaluate(str(best), ["Set5"], [2], limit=1, progress=False)["summary"][0]
    plus = evaluate(str(best), ["Set5"], [2], limit=1, progress=False, self_ensemble=True)["summary"][0]
    cells = {c["model"]: c for c in res["summary"]}
    assert cells["tiny"]["psnr"] == plain["psnr"] and cells["tiny+"]["psnr"] == plus["psnr"]
    assert cells["tiny"]["seed"] == 0 and res["train"]["status"] == "finished"
    assert res["checkpoint"]["sha256"] == __import__("hashlib").sha256(best.read_bytes()).hexdigest()
    # scoring the same checkpoint again gives the same cells
    again = evaluate_checkpoint(best, tmp_path / "again", label="tiny", sets=["Set5"], limit=1, progress=False)
    assert again["summary"][0]["psnr"] == plain["psnr"]


def test_stopped_run_records_an_empty_summary_then_continues(data_root, tmp_path):
    from ignn_lab.lab.training import train_and_evaluate

    res = train_and_evaluate("smoke", tmp_path, overrides=TINY, max_minutes=0, limit=1, progress=False)
    assert res["train"]["status"] == "time-limit" and res["train"]["step"] == 1 and res["summary"] == []
    check_results(res)
    done = train_and_evaluate("smoke", tmp_path, overrides=TINY, resume=True, limit=1, progress=False)
    assert done["train"]["status"] == "finished" and done["train"]["step"] == 3 and done["summary"]
    assert _steps_logged(tmp_path) == [1, 2, 3]


def test_live_curves_redraw_when_the_log_grows(tmp_path):
    assert curves_png(tmp_path, title="t") is None
    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps({"step": 1, "loss": 0.5}) + "\n")
    with LiveCurves(tmp_path, title="t", every=0.02) as live:
        deadline = time.time() + 20
        while live.updates < 1 and time.time() < deadline:
            time.sleep(0.02)
        with open(log, "a") as f:
            f.write(json.dumps({"step": 2, "loss": 0.4}) + "\n" + json.dumps({"step": 2, "val_psnr": 30.0}) + "\n")
        while live.updates < 2 and time.time() < deadline:
            time.sleep(0.02)
    assert live.updates == 2  # unchanged log: no redraw, not even on exit
    assert curves_png(tmp_path, title="t")[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_curves_of_several_runs_and_clean_errors(tmp_path, capsys):
    from ignn_lab.cli import main
    from ignn_lab.lab.training import compare_curves

    for name, vals in (("a", [30.0, 30.5, 30.4]), ("b", [29.0, 29.2, 29.9])):
        (tmp_path / name).mkdir()
        lines = []
        for i, v in enumerate(vals, 1):
            lines += [{"step": 10 * i, "loss": 0.1 / i}, {"step": 10 * i, "val_psnr": v}]
        (tmp_path / name / "log.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    res = compare_curves([tmp_path / "a", tmp_path / "b"], tmp_path / "c.png", labels=["A", "B"])
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert res["runs"]["A"] == {"folder": str(tmp_path / "a"), "last_step": 30, "best_val_psnr": 30.5,
                                "best_step": 20}
    assert (res["runs"]["B"]["best_val_psnr"], res["runs"]["B"]["best_step"]) == (29.9, 30)
    with pytest.raises(ValueError, match="1 labels for 2 runs"):
        compare_curves([tmp_path / "a", tmp_path / "b"], tmp_path / "d.png", labels=["A"])
    shifted = compare_curves([tmp_path / "a", tmp_path / "b"], tmp_path / "f.png", offsets=[0, 30])
    assert (shifted["runs"]["b"]["last_step"], shifted["runs"]["b"]["best_step"]) == (60, 60)
    assert shifted["runs"]["a"]["last_step"] == 30
    with pytest.raises(ValueError, match="offsets"):
        compare_curves([tmp_path / "a", tmp_path / "b"], tmp_path / "g.png", offsets=[5])
    assert main(["curves", str(tmp_path / "a"), "--out", str(tmp_path / "h.png"), "--offsets", "x"]) == 2
    assert "--offsets 'x': expected whole step counts" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["curves", str(tmp_path / "a"), str(tmp_path / "empty"), "--out", str(tmp_path / "e.png")]) == 2
    err = capsys.readouterr().err
    assert "empty: no training log" in err and "Traceback" not in err and not (tmp_path / "e.png").exists()
