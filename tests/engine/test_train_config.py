"""TrainConfig: strict keys, checked values, shipped configs, --set overrides."""

import json

import pytest
import torch

from ignn_lab.engine.train_config import TrainConfig, config_dir, list_configs, load_config, parse_overrides
from ignn_lab.models import build


def test_unknown_key_lists_the_accepted_ones():
    with pytest.raises(ValueError, match=r"unknown train config key\(s\) \['stpes'\]; accepted keys: .*steps"):
        TrainConfig.from_dict({"stpes": 10})


@pytest.mark.parametrize("key,value", [("steps", 0), ("scale", 5), ("lr", -1.0), ("amp", "fp8"),
                                       ("schedule", "linear"), ("ema_decay", 1.0), ("batch", True),
                                       ("train_sets", []), ("betas", [0.9]), ("deterministic", "yes")])
def test_bad_values_name_the_field(key, value):
    with pytest.raises(ValueError, match=f"train config: {key} must be"):
        TrainConfig.from_dict({key: value})


def test_round_trip_through_json():
    cfg = TrainConfig(model="edsr-lite", model_overrides={"n_feats": 8}, train_sets=("T91",), betas=(0.8, 0.99))
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


def test_every_shipped_config_loads_and_builds_its_model():
    configs = list_configs()
    assert {"smoke", "lite-x2"} <= set(configs)
    for name, text in configs.items():
        assert text, f"{name} has no description"
        cfg = load_config(name)
        with torch.device("meta"):
            model = build(cfg.model, cfg.scale, **cfg.model_overrides)
        assert model.scale == cfg.scale


def test_base_chain_and_overrides(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"base": "lite-x2", "steps": 123, "model_overrides": {"k": 2}}))
    (tmp_path / "b.json").write_text(json.dumps({"base": "a.json", "model_overrides": {"adapn": False}}))
    cfg = load_config(tmp_path / "b.json", parse_overrides(["lr=0.001", "model_overrides.window=4"]))
    assert cfg.steps == 123 and cfg.lr == 0.001 and cfg.model == "ignn-lite"
    assert cfg.model_overrides == {"k": 2, "adapn": False, "window": 4}


def test_missing_config_and_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a file and not a shipped config; shipped configs: .*smoke"):
        load_config("no-such-config")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_config(tmp_path / "bad.json")
    (tmp_path / "loop.json").write_text(json.dumps({"base": "loop.json"}))
    with pytest.raises(ValueError, match="loops back"):
        load_config(tmp_path / "loop.json")
    with pytest.raises(ValueError, match="expected key=value"):
        parse_overrides(["steps"])


def test_a_shipped_name_wins_over_a_folder_of_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "smoke").mkdir()  # e.g. the run folder of an earlier smoke run
    assert load_config("smoke").steps == load_config(TrainConfig.from_dict(json.loads(
        (config_dir() / "smoke.json").read_text()))).steps
