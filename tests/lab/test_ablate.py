"""GraphAgg* ablation: every variant is scored by the evaluation engine and compared with its defaults."""

import json

import pytest

from ignn_lab.lab.ablate import VARIANTS, graphagg_ablation


def test_ablation_rows_match_direct_evaluation(data_root, tmp_path):
    from ignn_lab.engine.evaluate import evaluate

    rep = graphagg_ablation(["default", "no-adapn", "k1"], ["Set5"], [2], out=tmp_path, limit=1,
                            progress=False)
    by = {r["variant"]: r for r in rep["rows"]}
    assert set(by) == {"bicubic", "default", "no-adapn", "k1"}
    direct = evaluate("graphagg-star", ["Set5"], [2], limit=1, progress=False, adapn=False)
    assert by["no-adapn"]["psnr"] == direct["summary"][0]["psnr"]
    assert by["default"]["dpsnr_vs_default"] == 0.0
    assert by["no-adapn"]["psnr"] != by["default"]["psnr"] and by["k1"]["psnr"] != by["default"]["psnr"]
    assert by["k1"]["dpsnr_vs_bicubic"] == pytest.approx(by["k1"]["psnr"] - by["bicubic"]["psnr"])
    on_disk = json.loads((tmp_path / "ablation.json").read_text())
    assert on_disk["rows"] == json.loads(json.dumps(rep["rows"]))
    assert (tmp_path / "ablation.png").stat().st_size > 0 and "| k1 | k=1 |" in (tmp_path / "ablation.md").read_text()
    assert (tmp_path / "no-adapn" / "results.json").is_file()


def test_custom_variants_and_bad_names(data_root, tmp_path):
    rep = graphagg_ablation({"k3": {"k": 3}}, ["Set5"], [2], out=tmp_path, limit=1, bicubic=False,
                            progress=False)
    assert [r["variant"] for r in rep["rows"]] == ["k3"] and rep["rows"][0]["dpsnr_vs_default"] is None
    with pytest.raises(ValueError, match="unknown GraphAgg\\* variant 'k2'.*known: default"):
        graphagg_ablation(["k2"], out=tmp_path)
    assert set(VARIANTS) >= {"default", "no-adapn", "same-scale", "global-search"}


def test_cli_ablate(data_root, tmp_path, capsys):
    from ignn_lab.cli import main

    assert main(["ablate", "graphagg", "--variants", "default,same-scale", "--limit", "1", "--quiet",
                 "--out", str(tmp_path)]) == 0
    assert "| same-scale | cross_scale=False |" in capsys.readouterr().out


TINY = {"model": "edsr-lite", "model_overrides": {"n_resblocks": 1}, "train_sets": ["T91"], "val_count": 1,
        "patch_size": 16, "batch": 2, "steps": 2, "warmup_steps": 1, "val_every": 2, "log_every": 1,
        "save_every": 2}


def test_learned_ablation_trains_each_variant_with_the_same_budget(data_root, tmp_path):
    from ignn_lab.engine.evaluate import evaluate
    from ignn_lab.lab.ablate import learned_ablation

    variants = {"base": {"config": "smoke", "overrides": TINY},
                "wider": {"config": "smoke", "overrides": {**TINY, "model_overrides": {"n_resblocks": 1,
                                                                                       "n_feats": 8}}}}
    rep = learned_ablation(variants, out=tmp_path, budget={"steps": 3}, limit=1, progress=False)
    by = {r["variant"]: r for r in rep["rows"]}
    assert rep["reference"] == "base" and set(by) == {"base", "wider"}
    for label in by:
        state = json.loads((tmp_path / label / "config.json").read_text())
        assert state["steps"] == 3 and state["seed"] == 0  # the budget overrides every variant
        direct = evaluate(str(tmp_path / label / "best.pt"), ["Set5"], [2], limit=1, progress=False)
        assert by[label]["psnr"] == direct["summary"][0]["psnr"]
    assert by["base"]["dpsnr_vs_base"] == 0.0
    assert by["wider"]["dpsnr_vs_base"] == pytest.approx(by["wider"]["psnr"] - by["base"]["psnr"])
    assert "| wider |" in (tmp_path / "ablation.md").read_text() and (tmp_path / "ablation.png").stat().st_size

    # a variant trained elsewhere is scored from its checkpoint, after its training config is checked
    ckpt = tmp_path / "wider" / "best.pt"
    again = learned_ablation({"wider": variants["wider"]}, out=tmp_path / "scored", budget={"steps": 3},
                             checkpoints={"wider": str(ckpt)}, limit=1, progress=False)
    assert again["rows"][0]["psnr"] == by["wider"]["psnr"]
    assert not (tmp_path / "scored" / "wider" / "last.pt").exists()
    with pytest.raises(ValueError, match="trained with a different config .*steps: trained 3, expected 4"):
        learned_ablation({"wider": variants["wider"]}, out=tmp_path / "bad", budget={"steps": 4},
                         checkpoints={"wider": str(ckpt)}, limit=1, progress=False)
    with pytest.raises(ValueError, match="checkpoints given for unknown variants \\['nope'\\]"):
        learned_ablation(variants, out=tmp_path / "bad", checkpoints={"nope": str(ckpt)})
    with pytest.raises(ValueError, match="expected \\{'config'"):
        learned_ablation({"x": {"cfg": "smoke"}}, out=tmp_path / "bad")
