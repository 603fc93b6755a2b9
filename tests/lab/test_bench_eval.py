import json

from ignn_lab.lab.bench_eval import baseline_bicubic_psnr_ssim, run


def test_quick_bench_agrees_with_numpy_baseline(data_root, tmp_path):
    out = run(tmp_path / "b.json", quick=True)
    saved = json.loads((tmp_path / "b.json").read_text())
    assert saved["image_scales"] == out["image_scales"] == 2
    assert out["max_abs_dpsnr"] < 1e-9 and out["max_abs_dssim"] < 1e-9
    assert out["baseline_numpy_s"] > 0 and out["ignn_lab_s"] > 0 and "loadavg_before" in out["machine"]


def test_baseline_matches_reference_table(data_root, bicubic_reference):
    from ignn_lab.data.io import read_image

    img = read_image(data_root / "Set5" / "head.png")
    p, s = baseline_bicubic_psnr_ssim(img, 3)
    ref_p, ref_s = bicubic_reference[("Set5", "head", 3)]
    assert abs(p - ref_p) < 1e-5 and abs(s - ref_s) < 1e-5
