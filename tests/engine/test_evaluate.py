import json
import math

import pytest

from ignn_lab.engine.evaluate import evaluate, format_table, get_predictor, summarise
from ignn_lab.engine.published import read_published

SETS = ("Set5", "Set14", "B100", "Urban100")


def _check_rows_against_reference(rows, reference, tol=0.005):
    assert rows
    for r in rows:
        ref_psnr, ref_ssim = reference[(r["set"], r["image"], r["scale"])]
        assert abs(r["psnr"] - ref_psnr) <= tol, (r, ref_psnr)
        assert abs(r["ssim"] - ref_ssim) <= 1e-5, (r, ref_ssim)


def test_fast_subset_matches_per_image_reference(data_root, bicubic_reference, tmp_path):
    """All of Set5 and the first 3 images of the other sets, every scale, each image within 0.005 dB."""
    res = evaluate("bicubic", ["Set5"], (2, 3, 4), data_root=data_root, out=tmp_path, progress=False)
    _check_rows_against_reference(res["rows"], bicubic_reference)
    sub = evaluate("bicubic", ["Set14", "B100", "Urban100"], (2, 3, 4), data_root=data_root, limit=3,
                   progress=False)
    _check_rows_against_reference(sub["rows"], bicubic_reference)
    assert len(sub["rows"]) == 27
    saved = json.loads((tmp_path / "results.json").read_text())
    assert set(saved) == {"rows", "summary", "provenance"}
    assert set(saved["rows"][0]) == {"model", "set", "scale", "image", "psnr", "ssim"}
    assert {"model", "set", "scale", "psnr", "ssim", "n_images"} <= set(saved["summary"][0])
    table = (tmp_path / "table.md").read_text()
    assert "| bicubic | Set5 | ×2 |" in table and "33.66" in table  # the published value stands beside it


def test_summary_means_and_published_delta():
    rows = [type("R", (), dict(model="bicubic", set="Set5", scale=2, image=str(i), psnr=p, ssim=s))()
            for i, (p, s) in enumerate([(30.0, 0.9), (32.0, 0.8)])]
    pub = read_published()
    (cell,) = summarise(rows, pub)
    assert cell["psnr"] == 31.0 and cell["ssim"] == pytest.approx(0.85) and cell["n_images"] == 2
    if pub:
        assert cell["delta_psnr"] == pytest.approx(31.0 - pub[("Bicubic", 2, "Set5")].psnr)
        assert "| bicubic | Set5 | ×2 | 31.000 |" in format_table([cell])


def test_grey_image_and_saved_images(data_root, bicubic_reference, tmp_path):
    res = evaluate("bicubic", ["Set14"], (3,), data_root=data_root, out=tmp_path, save_images=True, progress=False)
    bridge = [r for r in res["rows"] if r["image"] == "bridge"][0]
    assert abs(bridge["psnr"] - bicubic_reference[("Set14", "bridge", 3)][0]) < 0.005
    assert (tmp_path / "images" / "Set14" / "x3" / "bridge.png").is_file()


def test_predictor_errors():
    with pytest.raises(ValueError, match="no options"):
        get_predictor("bicubic", 2, k=5)
    with pytest.raises(ValueError):
        evaluate("bicubic", [], (2,))


@pytest.mark.slow
def test_full_bicubic_table(data_root, bicubic_reference, tmp_path):
    """The 12-cell table: each image within 0.005 dB of the reference, each cell within 0.02 dB / 0.0015 SSIM of
    the published value."""
    res = evaluate("bicubic", SETS, (2, 3, 4), data_root=data_root, out=tmp_path, progress=False)
    assert len(res["rows"]) == 219 * 3
    _check_rows_against_reference(res["rows"], bicubic_reference)
    cells = {(c["set"], c["scale"]): c for c in res["summary"]}
    assert len(cells) == 12
    for c in cells.values():
        assert c["n_images"] in (5, 14, 100)
        assert abs(c["delta_psnr"]) <= 0.02, c
        assert abs(c["delta_ssim"]) <= 0.0015, c
        assert math.isfinite(c["psnr"])
