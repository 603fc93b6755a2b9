"""``upscale``: images or a folder in, PNGs out; each equals the predictor's output on the decoded input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ignn_lab.data.io import OutputError, read_image, write_image
from ignn_lab.engine.inference import model_predictor
from ignn_lab.lab.upscale import list_inputs, upscale
from tests.support import snapshot


def _model():
    from ignn_lab.models import build

    torch.manual_seed(0)
    return build("ignn-lite", 2, n_resblocks=2, n_feats=16).eval()


@pytest.fixture()
def folder(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "in"
    write_image(src / "rgb.png", rng.integers(0, 256, (23, 31, 3), dtype=np.uint8))
    write_image(src / "grey.png", rng.integers(0, 256, (20, 17), dtype=np.uint8))
    (src / "notes.txt").write_text("not an image")
    return src


def test_folder_to_pngs(folder, tmp_path):
    model = _model()
    paths = upscale(folder, model=model, scale=2, out=tmp_path / "out", progress=False)
    assert [p.name for p in paths] == ["grey.png", "rgb.png"]
    pred = model_predictor(model, 2, progress=False)
    for p in paths:
        lr = read_image(folder / p.name)
        sr = read_image(p)
        assert sr.shape[:2] == (2 * lr.shape[0], 2 * lr.shape[1]) and sr.ndim == lr.ndim
        t = torch.from_numpy(lr)
        t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)
        ref = pred(t.contiguous())
        ref = ref[0] if ref.shape[0] == 1 else ref.permute(1, 2, 0)
        assert np.array_equal(sr, ref.numpy())


def test_single_image_with_tiles_and_ensemble(folder, tmp_path):
    model = _model()
    (p,) = upscale(folder / "rgb.png", model=model, scale=2, out=tmp_path / "o", tile=None, self_ensemble=True,
                   progress=False)
    assert read_image(p).shape == (46, 62, 3)


def test_input_errors(tmp_path, folder):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        list_inputs(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        list_inputs(tmp_path / "missing.png")
    write_image(folder / "rgb.jpg", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="both be written"):
        upscale(folder, model=_model(), scale=2, out=tmp_path / "o2", progress=False)
    before = snapshot(folder)
    with pytest.raises(OutputError, match="would overwrite the input"):
        upscale(folder / "rgb.png", model=_model(), scale=2, out=folder, progress=False)
    assert snapshot(folder) == before


def test_every_input_is_checked_before_the_first_is_written(folder, tmp_path):
    """Faults 7 and 11: a bad or too small image anywhere in the inputs stops the run before any output."""
    write_image(folder / "zz_tiny.png", np.zeros((2, 3), np.uint8))
    with pytest.raises(ValueError, match="zz_tiny.png: 3×2 pixels is too small for graphagg-star at ×2; it takes "
                                         "images of at least 6×6"):
        upscale(folder, model="graphagg-star", scale=2, out=tmp_path / "o", progress=False)
    (folder / "zz_tiny.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ValueError, match="zz_tiny.png: cannot decode the file"):
        upscale(folder, model=_model(), scale=2, out=tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()


def test_bicubic_through_the_same_resolver(folder, tmp_path):
    from ignn_lab.data.imresize import imresize_np

    (p,) = upscale(folder / "grey.png", model="bicubic", scale=3, out=tmp_path / "o", progress=False)
    assert np.array_equal(read_image(p), imresize_np(read_image(folder / "grey.png"), 3.0))
