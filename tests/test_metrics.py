import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from ignn_lab.metrics import prepare, psnr, psnr_ssim, ssim, to_y


def _rand(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def test_identical_images_give_inf_and_one():
    x = _rand((40, 50, 3))
    assert psnr(x, x, crop_border=2) == math.inf
    assert ssim(x, x, crop_border=2) == pytest.approx(1.0, abs=1e-12)


def test_psnr_known_offset_in_y():
    hr = np.full((32, 32, 3), 100, np.uint8)
    sr = hr + np.uint8(10)
    # Y offset of a uniform RGB offset d is d·(65.481 + 128.553 + 24.966)/255 = d·219/255.
    expected = 10 * math.log10(255**2 / (10 * 219 / 255) ** 2)
    assert psnr(sr, hr) == pytest.approx(expected, abs=1e-10)
    assert psnr(sr, hr, y_channel=False) == pytest.approx(10 * math.log10(255**2 / 100), abs=1e-10)


def test_grey_images_use_values_directly():
    hr = np.full((20, 20), 50, np.uint8)
    sr = hr + np.uint8(5)
    assert psnr(sr, hr) == pytest.approx(10 * math.log10(255**2 / 25), abs=1e-10)


def test_y_formula_matches_bt601():
    rgb = np.array([[[255, 0, 0]], [[0, 255, 0]], [[0, 0, 255]]], dtype=np.float64).transpose(2, 0, 1)
    np.testing.assert_allclose(to_y(rgb)[:, 0], [16 + 65.481, 16 + 128.553, 16 + 24.966])


def test_crop_border_shaves_each_side():
    x = _rand((30, 40, 3))
    assert prepare(x, crop_border=4).shape == (1, 22, 32)
    with pytest.raises(ValueError, match="leaves nothing"):
        prepare(x, crop_border=15)


def test_ssim_matches_scikit_image_gaussian_ssim():
    hr = _rand((60, 70), 1).astype(np.float64)
    sr = np.clip(hr + np.random.default_rng(2).normal(0, 12, hr.shape), 0, 255)
    ref = structural_similarity(sr, hr, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                data_range=255)
    assert ssim(sr / 255, hr / 255) == pytest.approx(ref, abs=1e-10)


def test_tensor_and_array_inputs_agree_and_batch():
    hr = _rand((36, 44, 3), 3)
    sr = _rand((36, 44, 3), 4)
    t_hr = torch.from_numpy(hr).permute(2, 0, 1)
    t_sr = torch.from_numpy(sr).permute(2, 0, 1)
    p, s = psnr_ssim(sr, hr, crop_border=3)
    assert psnr(t_sr, t_hr, crop_border=3) == pytest.approx(p, abs=1e-12)
    assert psnr(t_sr.float() / 255, t_hr.float() / 255, crop_border=3) == pytest.approx(p, abs=1e-4)
    batch = psnr(torch.stack([t_sr, t_hr]), torch.stack([t_hr, t_hr]), crop_border=3)
    assert batch[0] == pytest.approx(p, abs=1e-12) and batch[1] == math.inf
    assert ssim(torch.stack([t_sr, t_sr]), torch.stack([t_hr, t_hr]), crop_border=3)[1] == pytest.approx(s, abs=1e-12)


def test_bad_inputs():
    with pytest.raises(ValueError, match="channels"):
        psnr(np.zeros((10, 10, 4), np.uint8), np.zeros((10, 10, 4), np.uint8))
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(np.zeros((10, 10), np.uint8), np.zeros((12, 10), np.uint8))
    with pytest.raises(TypeError):
        psnr(np.zeros((10, 10), np.int32), np.zeros((10, 10), np.int32))
    with pytest.raises(ValueError, match="11×11"):
        ssim(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8))
