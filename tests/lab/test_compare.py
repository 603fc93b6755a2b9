"""The comparison table against the published values file it reads."""

import json

import pytest

from ignn_lab.engine.published import PublishedValue
from ignn_lab.lab.compare import comparison_table, paired_difference, paired_table, read_cells


def _published():
    return {("SRCNN", 2, "Set5"): PublishedValue("SRCNN", 2, "Set5", 36.66, 0.9542, "x"),
            ("VDSR", 2, "Set5"): PublishedValue("VDSR", 2, "Set5", 37.53, 0.9590, "x"),
            ("SRCNN", 2, "Set14"): PublishedValue("SRCNN", 2, "Set14", 32.45, 0.9067, "x")}


def test_rows_per_scale_with_ours_last_and_the_best_in_bold():
    cells = {("ignn-lite-x2", 2, "Set5"): (37.0, 0.957), ("ignn-lite-x2", 2, "Set14"): (32.6, 0.91)}
    table = comparison_table(cells, methods=["SRCNN", "VDSR", "CARN-M"], sets=["Set5", "Set14"],
                             published=_published())
    lines = table.splitlines()
    assert lines[2] == "| ×2 | SRCNN | 36.66 / 0.9542 | 32.45 / 0.9067 |"
    assert lines[3] == "| ×2 | VDSR | **37.53** / 0.9590 | – |"
    assert lines[4] == "| ×2 | **ignn-lite-x2** (ours) | 37.00 / 0.9570 | **32.60** / 0.9100 |"
    assert "CARN-M" not in table  # no published row at this scale


def test_cells_from_results_files_and_subsets_refused(tmp_path):
    res = {"summary": [{"model": "m", "scale": 2, "set": "Set5", "psnr": 30.0, "ssim": 0.9}], "provenance": {}}
    (tmp_path / "a.json").write_text(json.dumps(res))
    assert read_cells([tmp_path / "a.json"]) == {("m", 2, "Set5"): (30.0, 0.9)}
    res["provenance"]["limit"] = 2
    (tmp_path / "b.json").write_text(json.dumps(res))
    with pytest.raises(ValueError, match="first 2 images"):
        read_cells([tmp_path / "b.json"])


def test_the_shared_published_table_has_the_comparison_methods(data_root):
    table = comparison_table({("x", 2, "Set5"): (33.0, 0.9)})
    for method, psnr in (("Bicubic", "33.66"), ("SRCNN", "36.66"), ("FSRCNN", "37.00"), ("VDSR", "37.53"),
                         ("CARN-M", "37.53")):
        assert f"| ×2 | {method} | {psnr}" in table or f"| ×2 | {method} | **{psnr}**" in table


def _rows(model, values):
    return {"rows": [{"model": model, "set": st, "scale": 2, "image": f"i{i}", "psnr": v, "ssim": 0.9 + v / 1000}
                     for st, vs in values.items() for i, v in enumerate(vs)], "summary": [], "provenance": {}}


def test_paired_difference_against_a_hand_computation(tmp_path, capsys):
    from ignn_lab.cli import main

    a = {"Set5": [30.0, 31.0, 32.5, 29.0], "Urban100": [25.0, 26.0, 27.0]}
    b = {"Set5": [29.5, 31.2, 32.0, 28.7], "Urban100": [25.0, 25.5, 26.0]}
    (tmp_path / "a.json").write_text(json.dumps(_rows("A", a)))
    (tmp_path / "b.json").write_text(json.dumps(_rows("B", b)))
    cells = paired_difference(tmp_path / "a.json", tmp_path / "b.json")
    assert [(c["set"], c["images"]) for c in cells] == [("Set5", 4), ("Urban100", 3)]
    d = [0.5, -0.2, 0.5, 0.3]                       # Set5, image by image
    mean = sum(d) / 4
    sd = (sum((x - mean) ** 2 for x in d) / 3) ** 0.5
    half = 3.182446305284263 * sd / 2               # t(0.975, 3) · sd / sqrt(4)
    c = cells[0]
    assert c["mean_psnr_diff"] == pytest.approx(mean) and c["sd"] == pytest.approx(sd)
    assert c["ci95"] == pytest.approx((mean - half, mean + half))
    assert (c["a_better"], c["a_worse"]) == (3, 1) and c["mean_ssim_diff"] == pytest.approx(mean / 1000)
    assert (cells[1]["a_better"], cells[1]["a_worse"]) == (2, 0)
    assert "| ×2 | Set5 | 4 | +0.275 |" in paired_table(cells)
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--paired"]) == 0
    assert "A − B" in capsys.readouterr().out
    b["Set5"] = b["Set5"][:3]
    (tmp_path / "c.json").write_text(json.dumps(_rows("B", b)))
    with pytest.raises(ValueError, match="different images"):
        paired_difference(tmp_path / "a.json", tmp_path / "c.json")
    assert main(["compare", str(tmp_path / "a.json"), "--paired"]) == 2
    assert "two results.json" in capsys.readouterr().err
