"""Image reading and writing (uint8 RGB or grey arrays, clear errors) and the atomic writes every output uses."""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = ["IMAGE_SUFFIXES", "MAX_IMAGE_PIXELS", "ImageInfo", "ImageReadError", "OutputError", "atomic_write_bytes",
           "check_image_array", "json_bytes", "probe_image", "read_image", "sha256_file", "write_image"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
_ACCEPTED = "8-bit RGB or 8-bit greyscale (PNG, JPEG, BMP, TIFF, WebP, PPM/PGM)"
#: The largest image read (8192×8192). A header is checked before any pixel is decoded, so a file that claims a
#: huge size (a decompression bomb) costs nothing; PIL's own limit lies higher (179 MP) and only warns below it.
MAX_IMAGE_PIXELS = 8192 * 8192
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


class ImageReadError(ValueError):
    """An image file that ignn-lab cannot use; the message says what was found."""


class OutputError(OSError):
    """An output that cannot be written; the message names it, says why, and what is accepted."""


@dataclass(frozen=True)
class ImageInfo:
    """What an image file's header says: ``width``, ``height`` and ``channels`` (3 RGB, 1 grey) once decoded."""

    path: Path
    width: int
    height: int
    channels: int


def _raw_modes(im: Image.Image) -> list[str]:
    """The decoder's raw modes (``RGB;16B`` for a 48-bit PNG) and, for PPM, ``maxval``s above 255 as ``;16``."""
    out = []
    for tile in getattr(im, "tile", None) or []:
        args = tile[3] if len(tile) > 3 else None
        if isinstance(args, str):
            out.append(args)
        elif isinstance(args, tuple) and args and isinstance(args[0], str):
            out.append(args[0])
            if tile[0] == "ppm" and len(args) > 1 and isinstance(args[1], int) and args[1] > 255:
                out.append(";16")
    return out


def _check_header(p: Path, im: Image.Image, max_pixels: int) -> tuple[str, int]:
    """Refuse, from the header alone, what :func:`read_image` cannot return faithfully; (mode, channels)."""
    w, h = im.size
    if w * h > max_pixels:
        raise ImageReadError(f"{p}: the header says {w}×{h} pixels ({w * h / 1e6:.0f} MP); images up to "
                             f"{max_pixels / 1e6:.0f} MP are read (a larger claim is refused before decoding)")
    if w == 0 or h == 0:
        raise ImageReadError(f"{p}: the image has no pixels ({w}×{h}); expected {_ACCEPTED}")
    mode = im.mode
    if mode in _WIDE_MODES:
        raise ImageReadError(f"{p}: 16/32-bit image (mode {mode}); expected {_ACCEPTED}")
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in im.info):
        raise ImageReadError(f"{p}: image with an alpha channel (mode {mode}); expected {_ACCEPTED}. "
                             "Flatten it onto a background first.")
    if mode not in ("RGB", "L", "P", "1"):
        raise ImageReadError(f"{p}: unsupported image mode {mode}; expected {_ACCEPTED}")
    if any(";16" in r or ";32" in r for r in _raw_modes(im)):
        raise ImageReadError(f"{p}: 16 bits per channel (48-bit RGB), which would be cut to 8 bits; expected "
                             f"{_ACCEPTED}. Convert it to 8 bits first, choosing the tone mapping yourself.")
    return mode, 3 if mode in ("RGB", "P") else 1


def _open(p: Path):
    if not p.is_file():
        raise FileNotFoundError(f"no image file at {p}")
    if p.stat().st_size == 0:
        raise ImageReadError(f"{p}: the file is empty (0 bytes); expected {_ACCEPTED}")
    try:
        return Image.open(p)
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"{p}: the header claims a size beyond PIL's decompression-bomb limit; images up "
                             f"to {MAX_IMAGE_PIXELS / 1e6:.0f} MP are read") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{p}: cannot decode the file ({type(exc).__name__}); expected {_ACCEPTED}") from exc


def probe_image(path: str | os.PathLike, *, max_pixels: int = MAX_IMAGE_PIXELS) -> ImageInfo:
    """Check an image file from its header, without decoding the pixels (cheap: run it before long work).

    Raises:
        FileNotFoundError, ImageReadError: as :func:`read_image`, for everything the header shows.
    """
    p = Path(path)
    with _open(p) as im:
        _, channels = _check_header(p, im, max_pixels)
        return ImageInfo(p, im.size[0], im.size[1], channels)


def read_image(path: str | os.PathLike, *, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Read an image as uint8.

    Args:
        path: an 8-bit RGB or greyscale image file. Palette images without transparency are expanded to RGB.
        max_pixels: refuse larger images from their header, before decoding (default 8192×8192).

    Returns:
        H×W×3 uint8 (RGB) or H×W uint8 (grey).

    Raises:
        FileNotFoundError: the file does not exist.
        ImageReadError: the file is empty, corrupt, larger than ``max_pixels``, has more than 8 bits per channel
            or an alpha channel, or is another mode.
    """
    p = Path(path)
    with _open(p) as im:
        mode, _ = _check_header(p, im, max_pixels)
        try:
            im.load()
            if mode == "P":
                im = im.convert("RGB")
            elif mode == "1":
                im = im.convert("L")
            arr = np.asarray(im, dtype=np.uint8).copy()
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageReadError(f"{p}: cannot decode the pixel data ({type(exc).__name__}: {_first_line(exc)}); "
                                 f"expected {_ACCEPTED}") from exc
    return arr


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else ""


def check_image_array(img: np.ndarray, what: str = "image") -> np.ndarray:
    """Validate an in-memory image: H×W or H×W×3 uint8. Returns it unchanged."""
    if not isinstance(img, np.ndarray):
        raise TypeError(f"{what}: expected a numpy array, got {type(img).__name__}")
    if img.dtype != np.uint8:
        raise ImageReadError(f"{what}: dtype {img.dtype}; expected uint8 ({_ACCEPTED})")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ImageReadError(f"{what}: shape {img.shape}; expected H×W or H×W×3")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ImageReadError(f"{what}: empty image of shape {img.shape}")
    return img


def _temp_file(p: Path) -> tuple[int, Path]:
    """A new file beside ``p``, created as ``open()`` creates files: mode 0o666 less the process umask."""
    for _ in range(100):
        tmp = p.with_name(f".{p.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot find a free temporary name beside {p}")


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename, so a crash never leaves half a file.

    The file gets the permissions ``open()`` would give it: those of the file it replaces, else 0o666 less the
    umask. Parent folders are created.

    Raises:
        OutputError: the path is a folder, or it cannot be written (read-only file system, no space left, no
            permission); the message names the path, and nothing is left behind.
    """
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"{p} is a folder; expected a file path to write")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the folder {p.parent} for {p.name}: {_why(exc)}") from None
    tmp = None
    try:
        mode = p.stat().st_mode & 0o7777 if p.is_file() else None
        fd, tmp = _temp_file(p)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException as exc:
        if tmp is not None and os.path.lexists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise OutputError(f"cannot write {p}: {_why(exc)}; nothing was written") from None
        raise
    return p


def write_image(path: str | os.PathLike, img: np.ndarray) -> Path:
    """Write an H×W or H×W×3 uint8 array as PNG (or the format the suffix names), atomically."""
    import io

    img = check_image_array(img, str(path))
    buf = io.BytesIO()
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(Path(path).suffix.lower(), "PNG")
    Image.fromarray(img).save(buf, format=fmt)
    return atomic_write_bytes(path, buf.getvalue())


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def json_bytes(obj: Any) -> bytes:
    """Strict JSON (RFC 8259) of plain data, indented: a non-finite float (the PSNR of two equal images is +inf)
    becomes ``null``, so that every JSON reader parses the file."""
    return (json.dumps(_finite(obj), indent=1, allow_nan=False) + "\n").encode()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
