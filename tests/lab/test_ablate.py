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
