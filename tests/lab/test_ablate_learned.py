"""The learned ablation: every variant trained with the same budget (or scored from its checkpoint)."""

import json

import pytest

TINY = {"model": "edsr-lite", "model_overrides": {"n_resblocks": 1}, "train_sets": ["T91"], "val_count": 1,
        "patch_size": 16, "batch": 2, "steps": 2, "warmup_steps": 1, "val_every": 2, "log_every": 1,
        "save_every": 2}


def test_learned_ablation_trains_each_variant_with_the_same_budget(data_root, tmp_path):
    from ignn_lab.engine.evaluate import evaluate
    from ignn_lab.lab.ablate_learned import learned_ablation

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
