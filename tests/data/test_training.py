"""Training crops: aligned with the protocol LR, reproducible from (seed, rank, step), held-out images kept out."""

import numpy as np
import pytest
import torch

from ignn_lab.data.datasets import list_images
from ignn_lab.data.imresize import imresize
from ignn_lab.data.io import write_image
from ignn_lab.data.training import PatchSampler, held_out, load_training_images, load_validation_images


def _textures(folder, n, size, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        h, w = size if isinstance(size, tuple) else (size, size)
        small = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3)).astype(np.float64)
        img = np.kron(small, np.ones((4, 4, 1)))[:h, :w] + rng.normal(0, 12, (h, w, 3))
        write_image(folder / f"im{i:02d}.png", np.clip(img, 0, 255).astype(np.uint8))
    return folder


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("IGNN_LAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("scale", [2, 3])
def test_crops_are_the_protocol_lr_of_the_hr_crop(tmp_path, cache, scale):
    """Inside a crop, the MATLAB bicubic of the HR crop equals the LR crop (borders differ: the whole-image LR
    sees pixels beyond the crop). A transposed crop was resized columns-first, so its uint8 rounding between the
    two passes matches the transposed resize."""
    imgs = load_training_images([str(_textures(tmp_path / "tr", 3, 97))], scale, 12, progress=False)
    sampler = PatchSampler(imgs, scale, 12, seed=3)
    lr, hr = sampler.batch(5, 0, 8)
    assert lr.shape == (8, 3, 12, 12) and hr.shape == (8, 3, 12 * scale, 12 * scale)
    hr8, lr8 = (hr * 255).round().to(torch.uint8), (lr * 255).round().to(torch.uint8)
    down = imresize(hr8, 1.0 / scale)
    down_t = imresize(hr8.transpose(-1, -2), 1.0 / scale).transpose(-1, -2)
    inner = slice(3, -3)
    for i in range(len(lr8)):
        want = lr8[i][..., inner, inner]
        assert torch.equal(down[i][..., inner, inner], want) or torch.equal(down_t[i][..., inner, inner], want)


def test_sampling_depends_only_on_seed_rank_and_step(tmp_path, cache):
    imgs = load_training_images([str(_textures(tmp_path / "tr", 4, 64))], 2, 16, progress=False)
    a, b = PatchSampler(imgs, 2, 16, seed=1), PatchSampler(imgs, 2, 16, seed=1)
    assert torch.equal(a.batch(7, 0, 4)[1], b.batch(7, 0, 4)[1])
    assert not torch.equal(a.batch(7, 0, 4)[1], a.batch(7, 1, 4)[1])
    assert not torch.equal(a.batch(7, 0, 4)[1], a.batch(8, 0, 4)[1])
    assert not torch.equal(a.batch(7, 0, 4)[1], PatchSampler(imgs, 2, 16, seed=2).batch(7, 0, 4)[1])


def test_all_eight_orientations_occur(tmp_path, cache):
    """The augmentation reaches every flip/rotation: an asymmetric gradient image shows 8 distinct crops."""
    d = tmp_path / "g"
    d.mkdir()
    y, x = np.mgrid[0:40, 0:40]
    write_image(d / "g.png", np.stack([y * 6, x * 6, (y * 3 + x) % 256], 2).astype(np.uint8))
    imgs = load_training_images([str(d)], 2, 20, progress=False)
    sampler = PatchSampler(imgs, 2, 20, seed=0)
    seen = {tuple(sampler.batch(s, 0, 1)[1][0, :, [0, 0, -1, -1], [0, -1, 0, -1]].flatten().tolist()) for s in range(200)}
    assert len(seen) >= 8


def test_small_images_are_skipped_and_none_left_is_an_error(tmp_path, cache):
    d = _textures(tmp_path / "mix", 2, 64)
    _textures(tmp_path / "mix", 1, 20, seed=5)  # overwrites im00 with a 20×20 image
    imgs = load_training_images([str(d)], 2, 16, progress=False)
    assert len(imgs.hr) == 1 and len(imgs.skipped) == 1 and "im00" in imgs.skipped[0]
    with pytest.raises(ValueError, match="no training image .* large enough"):
        load_training_images([str(d)], 4, 32, progress=False)
    with pytest.raises((FileNotFoundError, ValueError), match="no/such/folder"):
        load_training_images(["no/such/folder"], 2, 16, data_root=tmp_path, progress=False)


def test_held_out_images_are_spread_and_excluded(tmp_path, cache):
    d = _textures(tmp_path / "v", 10, 40)
    recs = list_images(str(d))
    picked = held_out(recs, 3)
    assert [r.name for r in picked] == ["im01", "im05", "im08"]
    imgs = load_training_images([str(d)], 2, 8, exclude=[r.path for r in picked], progress=False)
    assert {r.name for r in imgs.records} == {r.name for r in recs} - {"im01", "im05", "im08"}
    val = load_validation_images(str(d), 3, 2)
    assert [v.name.split("/")[1] for v in val] == ["im01", "im05", "im08"]
    assert val[0].lr.shape == (3, 20, 20) and val[0].hr.shape == (3, 40, 40)
    with pytest.raises(ValueError, match="val_count=11 but the validation set has only 10"):
        held_out(recs, 11)
