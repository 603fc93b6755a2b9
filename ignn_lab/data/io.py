"""Image reading and writing: uint8 RGB or grey arrays, clear errors, atomic writes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
_ACCEPTED = "8-bit RGB or 8-bit greyscale (PNG, JPEG, BMP, TIFF, WebP, PPM/PGM)"


class ImageReadError(ValueError):
    """An image file that ignn-lab cannot use; the message says what was found."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as uint8.

    Args:
        path: an 8-bit RGB or greyscale image file. Palette images without transparency are expanded to RGB.

    Returns:
        H×W×3 uint8 (RGB) or H×W uint8 (grey).

    Raises:
        FileNotFoundError: the file does not exist.
        ImageReadError: the file is empty, corrupt, 16-bit, has an alpha channel, or is another mode.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no image file at {p}")
    if p.stat().st_size == 0:
        raise ImageReadError(f"{p}: the file is empty (0 bytes); expected {_ACCEPTED}")
    try:
        with Image.open(p) as im:
            im.load()
            mode = im.mode
            if mode == "P":
                if "transparency" in im.info:
                    raise ImageReadError(
                        f"{p}: palette image with transparency; expected {_ACCEPTED} without alpha"
                    )
                im = im.convert("RGB")
                mode = "RGB"
            if mode == "1":
                im = im.convert("L")
                mode = "L"
            if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
                raise ImageReadError(f"{p}: 16/32-bit image (mode {mode}); expected {_ACCEPTED}")
            if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
                raise ImageReadError(
                    f"{p}: image with an alpha channel (mode {mode}); expected {_ACCEPTED}. "
                    "Flatten it onto a background first."
                )
            if mode not in ("RGB", "L"):
                raise ImageReadError(f"{p}: unsupported image mode {mode}; expected {_ACCEPTED}")
            arr = np.asarray(im, dtype=np.uint8).copy()
    except ImageReadError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{p}: cannot decode the file ({exc}); expected {_ACCEPTED}") from exc
    if arr.size == 0:
        raise ImageReadError(f"{p}: the image has no pixels ({arr.shape}); expected {_ACCEPTED}")
    return arr


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


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename, so a crash never leaves half a file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
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
