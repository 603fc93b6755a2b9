"""environment.yml (conda) against pyproject.toml (pip): the same runtime dependencies with the same version
ranges, every package from conda-forge (the pytorch channel stopped publishing after torch 2.5)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

yaml = pytest.importorskip("yaml")  # PyYAML comes with papermill (the dev extra)
try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"torch": "pytorch"}  # pip name -> conda-forge name, where they differ


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _conda() -> tuple[list[str], dict[str, SpecifierSet]]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    specs = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            name, spec = re.match(r"([A-Za-z0-9_.\-]+)\s*(.*)", dep).groups()
            specs[name.lower()] = SpecifierSet(spec.replace("=", "==") if re.fullmatch(r"=[^=].*", spec) else spec)
    return env["channels"], specs


def test_packages_come_from_conda_forge_only():
    channels, _ = _conda()
    assert channels[0] == "conda-forge"
    assert not {"pytorch", "nvidia", "defaults"} & set(channels)


def test_every_runtime_dependency_is_there_with_the_same_range():
    _, conda = _conda()
    for text in _pyproject()["dependencies"]:
        req = Requirement(text)
        name = CONDA_NAMES.get(req.name.lower(), req.name.lower())
        assert name in conda, f"{req.name} ({name} on conda-forge) is missing from environment.yml"
        assert conda[name] == req.specifier, f"{name}: environment.yml {conda[name]}, pyproject {req.specifier}"


def test_torch_range_admits_releases_after_the_pytorch_channel_stopped():
    _, conda = _conda()
    torch_range = conda["pytorch"]
    assert torch_range.contains("2.6") and torch_range.contains("2.13")


def test_optional_packages_match_their_extras():
    """Extras that environment.yml installs (faiss-gpu, the notebook and test tools) carry the extras' ranges."""
    _, conda = _conda()
    extras = [Requirement(t) for reqs in _pyproject()["optional-dependencies"].values() for t in reqs]
    matched = 0
    for req in extras:
        if req.name.lower() in conda:
            matched += 1
            assert conda[req.name.lower()] == req.specifier, req.name
    assert matched >= 5


def test_package_data_ships_every_file_the_code_reads():
    """Every non-Python file in ignn_lab/ (the C kernel and its header, configs, ...) is in a wheel: a missing
    _kernels.h would break ``import ignn_lab.graph`` after ``pip install``."""
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["ignn_lab"]
    package = ROOT / "ignn_lab"
    files = [p.relative_to(package) for p in package.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")
             and not p.name.startswith(".") and "__pycache__" not in p.parts]
    assert files  # the check is not vacuous
    missing = [str(f) for f in files if not any(f.match(g) for g in globs)]
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"
