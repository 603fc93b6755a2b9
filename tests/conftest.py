"""Shared fixtures: the data root and the reference folder (read in place from ../shared, never copied).

When the data is absent the tests that need it skip, unless IGNN_LAB_REQUIRE_DATA=1 (set by .ci/run),
in which case they fail: CI must never pass by skipping.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from ignn_lab.data.datasets import default_data_root, reference_root
from tests.support import load_fixture, missing as _missing  # noqa: F401  (load_fixture: older imports)


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = default_data_root()
    if root is None or not (root / "MANIFEST.tsv").is_file():
        _missing("the data root (../shared/datasets)")
    return root


@pytest.fixture(scope="session")
def ref_root(data_root) -> Path:
    root = reference_root(data_root)
    if root is None:
        _missing("the reference folder (../shared/reference)")
    return root


@pytest.fixture(scope="session")
def bicubic_reference(data_root) -> dict:
    with open(data_root / "bicubic_reference.tsv", newline="") as f:
        return {(r["set"], r["image"], int(r["scale"])): (float(r["psnr_y"]), float(r["ssim_y"]))
                for r in csv.DictReader(f, delimiter="\t")}


@pytest.fixture(autouse=True)
def _restore_rng():
    """Each test starts from, and leaves, the same RNG state."""
    py, npst, th = random.getstate(), np.random.get_state(), torch.get_rng_state()
    yield
    random.setstate(py)
    np.random.set_state(npst)
    torch.set_rng_state(th)
