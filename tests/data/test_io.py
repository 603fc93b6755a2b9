import io

import numpy as np
import pytest
from PIL import Image

from ignn_lab.data.io import ImageReadError, atomic_write_bytes, check_image_array, read_image, write_image


def _save(path, arr, mode=None, **kw):
    Image.fromarray(arr, mode=mode).save(path, **kw) if mode else Image.fromarray(arr).save(path, **kw)
    return path


def test_roundtrip_rgb_and_grey(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    grey = rgb[..., 0].copy()
    np.testing.assert_array_equal(read_image(write_image(tmp_path / "a.png", rgb)), rgb)
    np.testing.assert_array_equal(read_image(write_image(tmp_path / "b.png", grey)), grey)


def test_palette_without_alpha_is_expanded(tmp_path):
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (6, 6, 3), dtype=np.uint8)).convert("P")
    img.save(tmp_path / "p.png")
    out = read_image(tmp_path / "p.png")
    assert out.shape == (6, 6, 3) and out.dtype == np.uint8


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "nope.png")


def test_empty_file(tmp_path):
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty.*expected 8-bit RGB"):
        read_image(tmp_path / "e.png")


def test_corrupt_file(tmp_path):
    (tmp_path / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(ImageReadError, match="cannot decode.*expected 8-bit RGB"):
        read_image(tmp_path / "c.png")
    # truncated real PNG
    buf = io.BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 7).save(buf, format="PNG")
    (tmp_path / "t.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageReadError):
        read_image(tmp_path / "t.png")


def test_16bit_is_refused(tmp_path):
    arr = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    Image.fromarray(arr).save(tmp_path / "d.png")
    with pytest.raises(ImageReadError, match="16/32-bit.*expected 8-bit RGB"):
        read_image(tmp_path / "d.png")


@pytest.mark.parametrize("mode,channels", [("RGBA", 4), ("LA", 2)])
def test_alpha_is_refused(tmp_path, mode, channels):
    arr = np.zeros((5, 5, channels), np.uint8)
    Image.fromarray(arr, mode=mode).save(tmp_path / "a.png")
    with pytest.raises(ImageReadError, match=f"alpha channel \\(mode {mode}\\).*expected 8-bit RGB"):
        read_image(tmp_path / "a.png")


def test_check_image_array():
    assert check_image_array(np.zeros((4, 4, 1), np.uint8)).shape == (4, 4)
    with pytest.raises(ImageReadError, match="dtype float64"):
        check_image_array(np.zeros((4, 4)))
    with pytest.raises(ImageReadError, match="shape"):
        check_image_array(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(TypeError):
        check_image_array([[0]])


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "sub" / "x.bin"
    atomic_write_bytes(target, b"abc")
    assert target.read_bytes() == b"abc"
    assert [p.name for p in target.parent.iterdir()] == ["x.bin"]
