"""The results.json contract of the lab notebooks."""

import json

import pytest

from ignn_lab.lab.results import check_results, read_results, write_lab_results

CELL = {"model": "m", "set": "Set5", "scale": 2, "psnr": 30.0, "ssim": 0.9, "n_images": 5}
PROV = {"ignn_lab": "0", "git_commit": None}


def test_valid_and_invalid_results(tmp_path):
    ok = {"summary": [CELL], "provenance": PROV}
    assert check_results(ok) is ok
    bad = {"summary": [{**CELL, "scale": 5, "psnr": float("nan"), "n_images": True}], "provenance": {}}
    with pytest.raises(ValueError) as err:
        check_results(bad)
    text = str(err.value)
    for needle in ("scale = 5", "psnr is nan", "n_images = True", "'provenance' must"):
        assert needle in text
    with pytest.raises(ValueError, match="'summary' is empty"):
        check_results({"summary": [], "provenance": PROV})
    stopped = {"summary": [], "provenance": PROV, "train": {"status": "time-limit"}}
    assert check_results(stopped) is stopped
    with pytest.raises(ValueError, match="expected a JSON object"):
        check_results([])
    with pytest.raises(ValueError, match="is not a valid lab result"):
        write_lab_results(tmp_path, bad)
    assert not (tmp_path / "results.json").exists()
    write_lab_results(tmp_path, ok)
    assert read_results(tmp_path) == ok
    (tmp_path / "results.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_results(tmp_path)


def test_evaluate_output_is_a_valid_result(data_root):
    from ignn_lab.engine.evaluate import evaluate

    check_results(json.loads(json.dumps(evaluate("bicubic", ["Set5"], [2], limit=1, progress=False))))
