"""The comparison table against the published values file it reads."""

import json

import pytest

from ignn_lab.engine.published import PublishedValue
from ignn_lab.lab.compare import comparison_table, read_cells


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
