import io
import os
import stat

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


# ---------------------------------------------------------------- what the header says (issue 16, fault 10)

def _png(path, w, h, *, bit_depth=8, colour=2, rows=None):
    """A PNG written chunk by chunk, so that its header can claim any size and bit depth."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, colour, 0, 0, 0)
    idat = zlib.compress(rows if rows is not None else b"\0" * (1 + 3 * w))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # PIL's own, before ours
@pytest.mark.parametrize("side", [10000, 20000])
def test_a_header_claiming_a_huge_image_is_refused_before_decoding(tmp_path, side):
    """10000² lies under PIL's own bomb limit (no check at all), 20000² above it (PIL raised its own error)."""
    from ignn_lab.data.io import probe_image

    p = _png(tmp_path / "bomb.png", side, side)  # a few hundred bytes that claim 300-1200 MB of pixels
    for read in (read_image, probe_image):
        with pytest.raises(ImageReadError, match=r"bomb\.png: .*images up to 67 MP are read"):
            read(p)


def test_max_pixels_is_the_limit(tmp_path):
    p = write_image(tmp_path / "a.png", np.zeros((30, 40, 3), np.uint8))
    assert read_image(p, max_pixels=1200).shape == (30, 40, 3)
    with pytest.raises(ImageReadError, match="40×30 pixels"):
        read_image(p, max_pixels=1199)


def _tiff48(path, a):
    """An uncompressed 48-bit RGB TIFF (PIL cannot write one)."""
    import struct

    h, w, _ = a.shape
    data = a.astype("<u2").tobytes()
    entries, n = [], 9
    bps_off = 8 + 2 + n * 12 + 4
    data_off = bps_off + 6
    for tag, typ, cnt, val in ((256, 4, 1, w), (257, 4, 1, h), (258, 3, 3, bps_off), (259, 3, 1, 1),
                               (262, 3, 1, 2), (273, 4, 1, data_off), (277, 3, 1, 3), (278, 4, 1, h),
                               (279, 4, 1, len(data))):
        entries.append(struct.pack("<HHII", tag, typ, cnt, val))
    path.write_bytes(b"II*\0" + struct.pack("<IH", 8, n) + b"".join(entries) + b"\0\0\0\0"
                     + struct.pack("<HHH", 16, 16, 16) + data)
    return path


def test_48_bit_rgb_is_refused_not_cut_to_8_bits(tmp_path):
    a = np.random.default_rng(0).integers(0, 65536, (6, 5, 3)).astype(np.uint16)
    rows = b"".join(b"\0" + a[y].astype(">u2").tobytes() for y in range(a.shape[0]))
    files = [_png(tmp_path / "rgb48.png", 5, 6, bit_depth=16, rows=rows), _tiff48(tmp_path / "rgb48.tif", a)]
    ppm = tmp_path / "rgb48.ppm"
    ppm.write_bytes(b"P6\n5 6\n65535\n" + a.astype(">u2").tobytes())
    files.append(ppm)
    for p in files:
        assert Image.open(p).mode == "RGB"  # what PIL would silently hand over, cut to 8 bits
        with pytest.raises(ImageReadError, match=f"{p.name}: 16 bits per channel.*expected 8-bit RGB"):
            read_image(p)


# ---------------------------------------------------------------- writes (issue 16, faults 7 and 12)

@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_write_respects_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        p = atomic_write_bytes(tmp_path / "x.bin", b"abc")
        with open(tmp_path / "plain.bin", "wb") as f:  # what open() gives, the reference
            f.write(b"abc")
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == stat.S_IMODE((tmp_path / "plain.bin").stat().st_mode)


def test_atomic_write_keeps_the_mode_of_the_file_it_replaces(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(b"old")
    p.chmod(0o640)
    atomic_write_bytes(p, b"new")
    assert p.read_bytes() == b"new" and stat.S_IMODE(p.stat().st_mode) == 0o640


def test_atomic_write_errors_name_the_path_and_leave_the_old_file(tmp_path, monkeypatch):
    from ignn_lab.data.io import OutputError
    from tests.support import disk_full

    p = tmp_path / "x.bin"
    p.write_bytes(b"old")
    disk_full(monkeypatch, "x.bin")
    with pytest.raises(OutputError, match=f"cannot write {p}: No space left on device"):
        atomic_write_bytes(p, b"new" * 1000)
    assert p.read_bytes() == b"old" and [q.name for q in tmp_path.iterdir()] == ["x.bin"]
    with pytest.raises(OutputError, match="is a folder"):
        atomic_write_bytes(tmp_path, b"x")


def test_json_is_strict():
    """A PSNR of +inf (identical images) must not become ``Infinity``, which most JSON readers reject."""
    import json

    from ignn_lab.data.io import json_bytes

    text = json_bytes({"psnr": float("inf"), "rows": [1.5, float("nan")], "n": 3}).decode()

    def refuse(name):
        raise ValueError(name)

    assert json.loads(text, parse_constant=refuse) == {"psnr": None, "rows": [1.5, None], "n": 3}
