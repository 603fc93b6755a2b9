"""The trainer: exact resume (in process, after SIGINT, across processes), torchrun with gloo, clean errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ignn_lab import cli
from ignn_lab.data.io import write_image
from ignn_lab.engine.train import fit, read_training_state
from ignn_lab.engine.train_config import TrainConfig
from ignn_lab.models import load
from ignn_lab.models.checkpoint import CheckpointError

REPO = Path(__file__).resolve().parents[2]
TINY = {"edsr-lite": {"n_resblocks": 1, "n_feats": 8},
        "ignn-lite": {"n_resblocks": 2, "n_feats": 8, "k": 2, "window": 4}}


@pytest.fixture
def data(tmp_path, monkeypatch):
    """Five small textured images to train on and two to validate on; the LR cache in tmp."""
    monkeypatch.setenv("IGNN_LAB_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    for folder, n in (("train", 5), ("val", 2)):
        (tmp_path / folder).mkdir()
        for i in range(n):
            small = rng.integers(0, 256, (13, 17, 3)).astype(np.float64)
            img = np.kron(small, np.ones((5, 5, 1)))[:64, :80] + rng.normal(0, 10, (64, 80, 3))
            write_image(tmp_path / folder / f"{i}.png", np.clip(img, 0, 255).astype(np.uint8))
    return tmp_path


def _config(data: Path, model: str = "edsr-lite", **kw) -> TrainConfig:
    base = dict(model=model, model_overrides=TINY[model], train_sets=(str(data / "train"),),
                val_set=str(data / "val"), val_count=2, patch_size=12, batch=2, steps=8, warmup_steps=2,
                val_every=4, log_every=2, save_every=4, deterministic=True)
    return TrainConfig(**{**base, **kw})


def _state(path: Path) -> dict:
    st = read_training_state(path)
    return {"model": st["model"], "ema": st["ema"], "opt": st["optimizer"]["state"], "step": st["step"]}


def _assert_same(a: dict, b: dict) -> None:
    assert a["step"] == b["step"]
    for part in ("model", "ema"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}.{k} differs"
    for i in a["opt"]:
        for k, v in a["opt"][i].items():
            assert torch.equal(v, b["opt"][i][k]), f"optimizer state {i}.{k} differs"


@pytest.mark.parametrize("model", ["edsr-lite", "ignn-lite"])
def test_stop_and_resume_gives_the_same_bits_as_one_run(data, model):
    cfg = _config(data, model)
    whole = fit(cfg, data / "whole", progress=False)
    assert whole.status == "finished" and whole.step == 8
    part = fit(cfg, data / "split", progress=False, stop_after=3)
    assert part.status == "interrupted" and part.step == 3
    assert read_training_state(data / "split" / "last.pt")["step"] == 3
    rest = fit(None, data / "split", resume=True, progress=False)
    assert rest.status == "finished" and rest.step == 8
    _assert_same(_state(data / "whole" / "last.pt"), _state(data / "split" / "last.pt"))
    # the log holds each step once, in order, validations included
    log = [json.loads(x) for x in (data / "split" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [2, 4, 6, 8]
    assert [r["step"] for r in log if "val_psnr" in r] == [4, 8]
    for name in ("best.pt", "last.pt"):  # both are model checkpoints the rest of the kit loads
        assert load(data / "split" / name).config.to_dict() == whole.model.config.to_dict()


def _cli(args: list[str], env=None, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ignn_lab.cli", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_sigint_saves_a_loadable_last_pt_and_the_resumed_run_matches(data):
    # a constant learning rate, so that shortening the run afterwards (steps=...) leaves the schedule alone
    cfg = _config(data, steps=400, save_every=1000, val_every=1000, log_every=1, schedule="constant")
    (data / "cfg.json").write_text(json.dumps(cfg.to_dict()))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = _cli(["train", "--config", str(data / "cfg.json"), "--out", str(data / "run"), "--quiet"], env=env)
    log = data / "run" / "log.jsonl"
    deadline = time.time() + 600
    while time.time() < deadline and (not log.is_file() or len(log.read_text().splitlines()) < 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 130, err
    assert "SIGINT" in err and "Traceback" not in err
    stopped = read_training_state(data / "run" / "last.pt")["step"]
    assert 3 <= stopped < 400
    load(data / "run" / "last.pt")
    # finish a shortened run from there, and compare with the same run made in one go
    short = stopped + 3
    r = _cli(["train", "--out", str(data / "run"), "--resume", "--quiet", "--set", f"steps={short}"], env=env)
    _, err = r.communicate(timeout=600)
    assert r.returncode == 0, err
    once = _cli(["train", "--config", str(data / "cfg.json"), "--out", str(data / "once"), "--quiet",
                 "--set", f"steps={short}"], env=env)
    _, err = once.communicate(timeout=600)
    assert once.returncode == 0, err
    _assert_same(_state(data / "once" / "last.pt"), _state(data / "run" / "last.pt"))
    # both sessions' commands stay on record (the second changed the schedule's length)
    sessions = load(data / "run" / "best.pt").provenance["sessions"]
    assert [(x["from_step"], x["steps"]) for x in sessions] == [(0, 400), (stopped, short)]
    assert "--resume" in sessions[1]["command"] and "--resume" not in sessions[0]["command"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_gloo_ranks_end_with_identical_weights_and_one_set_of_files(data):
    cfg = _config(data, "ignn-lite", steps=4, val_every=4, save_every=2, batch=4)
    (data / "cfg.json").write_text(json.dumps(cfg.to_dict()))
    script = data / "run.py"
    script.write_text(
        "import os, sys, torch\n"
        "from ignn_lab.engine.train import fit\n"
        "from ignn_lab.engine.train_config import load_config\n"
        f"r = fit(load_config({str(data / 'cfg.json')!r}), {str(data / 'ddp')!r}, progress=False)\n"
        f"torch.save(r.model.state_dict(), {str(data)!r} + f\"/rank{{os.environ['RANK']}}.pt\")\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                          f"--master_port={_free_port()}", str(script)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = (torch.load(data / f"rank{i}.pt", weights_only=True) for i in (0, 1))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert sorted(p.name for p in (data / "ddp").iterdir()) == ["best.pt", "config.json", "curves.png",
                                                                  "last.pt", "log.jsonl"]
    st = read_training_state(data / "ddp" / "last.pt")
    assert st["step"] == 4 and torch.equal(st["ema"]["head.0.weight"], a["head.0.weight"])


def _main(args, capsys) -> tuple[int, str]:
    rc = cli.main(args)
    return rc, capsys.readouterr().err


def test_unknown_config_key_is_a_clean_error(data, capsys):
    rc, err = _main(["train", "--config", "smoke", "--out", str(data / "x"), "--set", "stesp=3"], capsys)
    assert rc == 2 and "unknown train config key(s) ['stesp']; accepted keys:" in err
    assert not (data / "x").exists()


def test_missing_training_folder_is_a_clean_error(data, capsys):
    cfg = _config(data, train_sets=(str(data / "nope"),))
    (data / "cfg.json").write_text(json.dumps(cfg.to_dict()))
    rc, err = _main(["train", "--config", str(data / "cfg.json"), "--out", str(data / "x"), "--quiet"], capsys)
    assert rc == 2 and str(data / "nope") in err


class _NotAllowed:  # pickled by reference: loading it needs code, which weights_only refuses
    pass


@pytest.mark.parametrize("content", ["empty", "garbage", "pickled-object", "no-trainer-state"])
def test_bad_checkpoints_are_clean_errors(data, capsys, content):
    run = data / "run"
    run.mkdir()
    last = run / "last.pt"
    if content == "empty":
        last.write_bytes(b"")
    elif content == "garbage":
        last.write_bytes(os.urandom(300))
    elif content == "pickled-object":
        torch.save({"format": "ignn-lab/model", "training": _NotAllowed()}, last)
    else:
        from ignn_lab.models import build, save

        save(build("edsr-lite", 2, **TINY["edsr-lite"]), last)
    before = last.read_bytes()
    rc, err = _main(["train", "--out", str(run), "--resume", "--quiet"], capsys)
    assert rc == 2 and str(last) in err and "Traceback" not in err
    assert last.read_bytes() == before  # nothing it could not read was overwritten
    if content == "pickled-object":
        assert "pickled Python objects" in err
    cfg = _config(data, init_from=str(last))
    if content != "no-trainer-state":
        with pytest.raises(CheckpointError, match=str(last)):
            fit(cfg, data / "fresh", progress=False)


def test_an_existing_run_is_not_overwritten_without_resume(data, capsys):
    fit(_config(data, steps=2), data / "run", progress=False)
    before = (data / "run" / "last.pt").read_bytes()
    rc, err = _main(["train", "--config", "smoke", "--out", str(data / "run"), "--quiet"], capsys)
    assert rc == 2 and "already holds a run" in err and "--resume" in err
    assert (data / "run" / "last.pt").read_bytes() == before
    rc, err = _main(["train", "--out", str(data / "run"), "--resume", "--quiet", "--set", "lr=0.1"], capsys)
    assert rc == 2 and "only" in err and "'lr'" in err


def test_init_from_is_on_record_with_the_source_file_and_its_lineage(data):
    """A run started from another's weights keeps which file it was (sha256: a shipped name may later name other
    weights) and the sessions that trained it, through a resume and into best.pt."""
    import hashlib

    fit(_config(data, steps=2), data / "a", progress=False)
    source = data / "a" / "best.pt"
    fit(_config(data, steps=2, init_from=str(source)), data / "b", progress=False)
    fit(_config(data, steps=3, init_from=str(source)), data / "b", resume=True, progress=False)
    sessions = load(data / "b" / "best.pt").provenance["sessions"]
    assert [s["from_step"] for s in sessions] == [0, 2] and "init_from" not in sessions[1]
    record = sessions[0]["init_from"]
    assert record["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert record["path"] == str(source.resolve()) and record["source"] == str(source)
    assert record["sessions"] == load(source).provenance["sessions"] and record["tensors"] == record["of"] > 0
