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


# ---------------------------------------------------------------- issue 16: faults found by trying it as a user

def test_window_none_runs_and_is_recorded_as_a_global_search(tmp_path):
    """Fault 1: window=None is a global search, recorded as null; other options keep their real types."""
    import torch

    from ignn_lab.data.convert import on_rgb, to_chw
    from ignn_lab.data.imresize import imresize
    from ignn_lab.data.io import read_image
    from ignn_lab.graph.aggregate import graphagg_star
    from ignn_lab.metrics import psnr_ssim
    from tests.support import write_png

    write_png(tmp_path / "set" / "a.png", 96, 96)  # son grid 11×11 patches: a window of 3 is not global
    hr = to_chw(read_image(tmp_path / "set" / "a.png"))
    lr = imresize(hr, 0.5)
    res = {}
    for window in (None, 3):
        r = evaluate("graphagg-star", [tmp_path / "set"], [2], window=window, progress=False)
        assert r["provenance"]["model_options"]["window"] == window
        assert r["provenance"]["model_options"]["k"] == 5
        sr = on_rgb(lambda x, w=window: graphagg_star(x, 2, window=w), lr)
        assert r["rows"][0]["psnr"] == pytest.approx(psnr_ssim(sr, hr, crop_border=2)[0], abs=1e-9)
        res[window] = r["rows"][0]["psnr"]
    assert res[None] != res[3]
    assert torch.equal(hr, to_chw(read_image(tmp_path / "set" / "a.png")))


def test_the_data_root_wins_over_a_local_folder_of_the_same_name(data_root, tmp_path, monkeypatch):
    """Fault 2: a set name means that set of the data root, whatever the working directory holds."""
    import shutil

    from tests.support import copy_set

    root = copy_set(data_root, tmp_path / "root")
    (tmp_path / "cwd" / "Set5").mkdir(parents=True)
    shutil.copy(data_root / "Set5" / "baby.png", tmp_path / "cwd" / "Set5")
    monkeypatch.chdir(tmp_path / "cwd")
    res = evaluate("bicubic", ["Set5"], [2], data_root=root, progress=False)
    assert res["summary"][0]["n_images"] == 5
    assert res["provenance"]["data_root"] == str(root.resolve())
    assert res["provenance"]["set_sources"][0]["folder"] == str(root / "Set5")
    local = evaluate("bicubic", ["./Set5"], [2], data_root=root, progress=False)  # the folder, as a path
    assert local["summary"][0]["n_images"] == 1 and "published_psnr" not in local["summary"][0]


def test_an_extra_image_in_a_benchmark_set_is_refused(data_root, ref_root, tmp_path):
    """Fault 3: scores labelled Set5 must be Set5's; the same folder given as a path is scored, unpublished."""
    import shutil

    from ignn_lab.data.datasets import DataMismatchError
    from tests.support import copy_set

    root = copy_set(data_root, tmp_path / "root")
    full = evaluate("bicubic", ["Set5"], [2], data_root=root, progress=False)["summary"][0]
    assert full["published_psnr"] == pytest.approx(33.66)
    cut = evaluate("bicubic", ["Set5"], [2], data_root=root, limit=2, progress=False)["summary"][0]
    assert cut["n_images"] == 2 and "published_psnr" not in cut  # 2 of 5 images: not the published mean
    shutil.copy(data_root / "Set14" / "zebra.png", root / "Set5")
    with pytest.raises(DataMismatchError, match=r"1 extra \(Set5/zebra.png\).*pass their folder as a path"):
        evaluate("bicubic", ["Set5"], [2], data_root=root, out=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    folder = evaluate("bicubic", [root / "Set5"], [2], progress=False)["summary"][0]
    assert folder["n_images"] == 6 and "published_psnr" not in folder


@pytest.mark.parametrize("kwargs,message", [
    ({"limit": -1}, "limit=-1"), ({"limit": 0}, "limit=0"), ({"limit": True}, "limit=True"),
    ({"scales": [2, 2]}, "scale 2 is listed twice"), ({"scales": [1]}, "scale 1"), ({"scales": [2.5]}, "scale 2.5"),
    ({"sets": ["Set5", "set5"]}, "'Set5' is listed twice"), ({"sets": []}, "at least one set")])
def test_run_arguments_are_checked_before_any_work(data_root, tmp_path, monkeypatch, kwargs, message):
    """Fault 4: no silently shortened, doubled or degenerate runs."""
    import ignn_lab.engine.evaluate as ev

    monkeypatch.setattr(ev, "_eval_image", lambda *a: pytest.fail("work started"))
    args = {"sets": ["Set5"], "scales": [2], **kwargs}
    with pytest.raises(ValueError, match=message):
        evaluate("bicubic", args.pop("sets"), args.pop("scales"), out=tmp_path / "o", progress=False, **args)
    assert not (tmp_path / "o").exists()


def test_an_infinite_psnr_is_written_as_strict_json(tmp_path):
    """Fault 4: a flat image is reproduced exactly (PSNR +inf); results.json stays valid JSON (null)."""
    import numpy as np

    from ignn_lab.data.io import write_image
    from ignn_lab.lab.tasks import evaluate_task

    write_image(tmp_path / "flat" / "grey.png", np.full((24, 24, 3), 128, np.uint8))
    res = evaluate_task("bicubic", [tmp_path / "flat"], [2], out=tmp_path / "o", progress=False)
    assert res["rows"][0]["psnr"] == float("inf")

    def refuse(name):
        raise ValueError(f"{name} is not JSON")

    saved = json.loads((tmp_path / "o" / "results.json").read_text(), parse_constant=refuse)
    assert saved["rows"][0]["psnr"] is None and saved["summary"][0]["psnr"] is None


@pytest.mark.parametrize("opts", [{"tile": 64}, {"dtype": "float64"}, {"self_ensemble": True},
                                  {"memory_budget_gb": 1.0}, {"overlap": 4}])
def test_network_options_are_refused_by_graphagg_star(opts):
    """Fault 9: an option that does not apply is an error that says so, when the predictor is built."""
    (name,) = opts
    with pytest.raises(ValueError, match=f"{name}=.* does not apply to graphagg-star .*graphagg-star takes "
                                         "device, k, window"):
        get_predictor("graphagg-star", 2, **opts)


def test_graphagg_star_takes_a_device_and_checks_its_switches(tmp_path):
    import torch

    from tests.support import write_png

    write_png(tmp_path / "set" / "a.png", 40, 44)
    a = evaluate("graphagg-star", [tmp_path / "set"], [2], device="cpu", progress=False)
    b = evaluate("graphagg-star", [tmp_path / "set"], [2], progress=False)
    assert a["rows"] == b["rows"]
    with pytest.raises(ValueError, match="tiles: not a switch of graphagg-star"):
        get_predictor("graphagg-star", 2, tiles=3)
    with pytest.raises(ValueError, match="weighting='ecn'; expected one of uniform, distance"):
        get_predictor("graphagg-star", 2, weighting="ecn")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no CUDA device"):
            get_predictor("graphagg-star", 2, device="cuda")


def test_an_image_too_small_for_the_scale_is_named_before_any_work(tmp_path, monkeypatch):
    """Fault 11: the message names the file, its size and the size accepted."""
    import numpy as np

    import ignn_lab.engine.evaluate as ev
    from ignn_lab.data.io import write_image
    from tests.support import write_png

    write_png(tmp_path / "set" / "big.png", 40, 40)
    tiny = write_image(tmp_path / "set" / "tiny.png", np.zeros((3, 5, 3), np.uint8))
    monkeypatch.setattr(ev, "_eval_image", lambda *a: pytest.fail("work started"))
    with pytest.raises(ValueError, match=f"{tiny}: 5×3 pixels is too small for bicubic at ×4 .*at least 4×4"):
        evaluate("bicubic", [tmp_path / "set"], [2, 4], progress=False)
    with pytest.raises(ValueError, match=f"{tiny}: 5×3 pixels is too small for graphagg-star at ×2 .*at least "
                                         "12×12"):
        evaluate("graphagg-star", [tmp_path / "set"], [2], progress=False)


def test_the_output_folder_is_checked_before_the_work(tmp_path, monkeypatch):
    """Fault 7: a bad --out fails at once, not after the whole evaluation."""
    import ignn_lab.engine.evaluate as ev
    from ignn_lab.data.io import OutputError
    from tests.support import write_png

    write_png(tmp_path / "set" / "a.png", 20, 20)
    (tmp_path / "file").write_text("x")
    monkeypatch.setattr(ev, "_eval_image", lambda *a: pytest.fail("work started"))
    with pytest.raises(OutputError, match="is a file; the output folder must be a folder"):
        evaluate("bicubic", [tmp_path / "set"], [2], out=tmp_path / "file", progress=False)
    with pytest.raises(OutputError, match="is the folder of images being scored"):
        evaluate("bicubic", [tmp_path / "set"], [2], out=tmp_path / "set", progress=False)
    assert (tmp_path / "file").read_text() == "x"


def test_a_failed_evaluation_leaves_the_previous_results(tmp_path, monkeypatch):
    """Fault 7: a full disk at the last file written (the figure) leaves the previous run's files, all of them."""
    from ignn_lab.data.io import OutputError
    from ignn_lab.lab.tasks import evaluate_task
    from tests.support import disk_full, snapshot, write_png

    write_png(tmp_path / "set" / "a.png", 20, 24)
    out = tmp_path / "o"
    evaluate_task("bicubic", [tmp_path / "set"], [2], out=out, save_images=True, progress=False)
    before = snapshot(out)
    assert {"results.json", "table.md", "psnr.png", "images/set/x2/a.png"} <= set(before)
    disk_full(monkeypatch, "psnr.png")
    with pytest.raises(OutputError, match="psnr.png: No space left on device"):
        evaluate_task("bicubic", [tmp_path / "set"], [2, 3], out=out, progress=False)
    assert snapshot(out) == before
