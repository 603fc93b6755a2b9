"""Helpers shared by the tests (imported from here, never from another test file)."""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch


def missing(what: str):
    """Skip a test whose data is absent, or fail it under IGNN_LAB_REQUIRE_DATA=1 (CI must not pass by skipping)."""
    if os.environ.get("IGNN_LAB_REQUIRE_DATA") == "1":
        pytest.fail(f"{what} is required (IGNN_LAB_REQUIRE_DATA=1) but was not found")
    pytest.skip(f"{what} not found (set IGNN_LAB_DATA / IGNN_LAB_REFERENCE)")


def load_fixture(ref_root: Path, name: str) -> dict:
    """A released-IGNN parity fixture (``official_ignn_<name>.pt``)."""
    path = ref_root / f"official_ignn_{name}.pt"
    if not path.is_file():
        missing(str(path))
    return torch.load(path, weights_only=True)


def write_png(path: Path, h: int, w: int, channels: int = 3, seed: int = 0) -> Path:
    """A textured uint8 PNG (smooth waves plus noise: no flat areas, so kNN has no ties)."""
    from ignn_lab.data.io import write_image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack([np.sin(yy / (5 + 2 * i)) * np.cos(xx / (7 + i)) for i in range(channels)], -1)
    img = np.clip(0.5 + 0.35 * base + 0.15 * rng.random((h, w, channels)), 0, 1) * 255
    img = img.round().astype(np.uint8)
    return write_image(path, img[..., 0] if channels == 1 else img)


def tiny_model(name: str = "ignn-lite", scale: int = 2, **overrides):
    """A small registry network with fixed weights (seed 0), in eval mode."""
    from ignn_lab.models import build

    torch.manual_seed(0)
    return build(name, scale, **{"n_resblocks": 1, "n_feats": 8, **overrides}).eval()


def copy_set(data_root: Path, dst_root: Path, set_name: str = "Set5") -> Path:
    """A data root at ``dst_root`` holding one set of ``data_root`` and its MANIFEST.tsv rows."""
    shutil.copytree(data_root / set_name, dst_root / set_name)
    with open(data_root / "MANIFEST.tsv", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        rows = [r for r in reader if r["set"] == set_name]
        fields = reader.fieldnames
    with open(dst_root / "MANIFEST.tsv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, delimiter="\t", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return dst_root


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file below ``folder`` (hidden ones too): relative path → (sha256, permission bits)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(folder))] = (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mode & 0o777)
    return out


def clean_error(rc: int, err: str, *pieces: str) -> str:
    """Assert a command-line failure is clean: exit code 2, one line on stderr, no traceback, naming ``pieces``.

    Returns:
        The line.
    """
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("ignn-lab ") and ": error: " in lines[0], err
    assert "Traceback" not in err
    for piece in pieces:
        assert piece in lines[0], (piece, lines[0])
    return lines[0]


def disk_full(monkeypatch, *names: str) -> None:
    """Make every atomic write of a file called one of ``names`` fail as a full disk does: the bytes go to
    ``/dev/full``, whose writes the kernel answers with ENOSPC."""
    import ignn_lab.data.io as io

    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full (Linux)")
    real = io._temp_file

    def temp_file(p: Path):
        if p.name in names:
            return os.open("/dev/full", os.O_WRONLY), p.with_name(f".{p.name}.never-created.tmp")
        return real(p)

    monkeypatch.setattr(io, "_temp_file", temp_file)


def unwritable_folder(tmp_path: Path) -> Path:
    """An existing folder that this process cannot write into (read-only for the user; as root, where root
    cannot write either, else skip)."""
    import tempfile

    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    candidates = [folder, Path("/proc/self"), Path("/sys")]
    for c in candidates:
        try:
            os.rmdir(tempfile.mkdtemp(dir=c))
        except OSError:
            return c
    pytest.skip("no folder here refuses writes to this process")
