"""Dataset registry: benchmark and training sets under a data root, any image folder, and the embedded set.

Data root resolution, first hit wins: an explicit ``data_root`` (CLI ``--data-root``), the ``IGNN_LAB_DATA``
environment variable, ``../shared/datasets`` next to the current directory or next to this checkout.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ignn_lab.data.io import IMAGE_SUFFIXES, read_image, sha256_file

__all__ = [
    "BENCHMARK_SETS", "TRAINING_SETS", "EMBEDDED_SETS", "ImageRecord", "DataCheck",
    "default_data_root", "resolve_data_root", "reference_root", "list_images", "load_image",
    "read_manifest", "check_data_root", "known_sets", "DataMismatchError", "verify_named_set", "canonical_set",
]

BENCHMARK_SETS = ("Set5", "Set14", "B100", "Urban100")
TRAINING_SETS = ("T91", "BSD200")
EMBEDDED_SETS = ("skimage",)
#: Natural photographs and textures bundled inside the scikit-image wheel (no download).
SKIMAGE_IMAGES = ("astronaut.png", "camera.png", "chelsea.png", "coffee.png", "coins.png", "rocket.jpg",
                  "motorcycle_left.png", "brick.png", "grass.png", "gravel.png")
_ALIASES = {"bsd100": "B100", "b100": "B100", "set5": "Set5", "set14": "Set14", "urban100": "Urban100",
            "t91": "T91", "bsd200": "BSD200", "skimage": "skimage"}


@dataclass(frozen=True)
class ImageRecord:
    """One image of a set: ``set`` name, ``name`` (file stem) and ``path``."""

    set: str
    name: str
    path: Path


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def default_data_root() -> Path | None:
    """The data root from ``IGNN_LAB_DATA`` or ``../shared/datasets``, or None when neither exists."""
    env = os.environ.get("IGNN_LAB_DATA")
    if env:
        return Path(env).expanduser()
    for base in (Path.cwd(), _repo_root()):
        cand = (base / ".." / "shared" / "datasets").resolve()
        if cand.is_dir():
            return cand
    return None


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """The data root to use; raises FileNotFoundError with the lookup order when there is none."""
    root = Path(data_root).expanduser() if data_root else default_data_root()
    if root is None or not root.is_dir():
        raise FileNotFoundError(
            f"no data root found (tried: {data_root or '--data-root not given'}, IGNN_LAB_DATA="
            f"{os.environ.get('IGNN_LAB_DATA', 'unset')}, ../shared/datasets). Point --data-root or IGNN_LAB_DATA "
            "at a folder with Set5/, Set14/, B100/, Urban100/ (and MANIFEST.tsv), or use the embedded set 'skimage'."
        )
    return root


def reference_root(data_root: str | os.PathLike | None = None) -> Path | None:
    """``shared/reference`` (parity fixtures, published results): ``IGNN_LAB_REFERENCE`` or beside the data root."""
    env = os.environ.get("IGNN_LAB_REFERENCE")
    if env:
        return Path(env).expanduser()
    try:
        root = resolve_data_root(data_root)
    except FileNotFoundError:
        return None
    cand = root.parent / "reference"
    return cand if cand.is_dir() else None


def canonical_set(name: str | os.PathLike) -> str | None:
    """The set a name means (``bsd100`` → ``B100``), or None when it names no known set (then it is a folder)."""
    return _ALIASES.get(str(name).lower())


def known_sets() -> tuple[str, ...]:
    """Names that :func:`list_images` resolves without a path."""
    return BENCHMARK_SETS + TRAINING_SETS + EMBEDDED_SETS


def _skimage_records() -> list[ImageRecord]:
    import skimage.data

    base = Path(skimage.data.data_dir)
    out = []
    for f in SKIMAGE_IMAGES:
        p = base / f
        if p.is_file():
            out.append(ImageRecord("skimage", Path(f).stem, p))
    if not out:
        raise FileNotFoundError(f"the scikit-image wheel has none of the embedded images in {base}")
    return out


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _folder_records(folder: Path, set_name: str) -> list[ImageRecord]:
    files = _image_files(folder)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return [ImageRecord(set_name, p.stem, p) for p in files]


def list_images(name_or_path: str | os.PathLike, data_root: str | os.PathLike | None = None) -> list[ImageRecord]:
    """The images of a named set (``Set5`` … ``BSD200``, ``skimage``) or of any folder, sorted by file name."""
    key = str(name_or_path)
    canonical = canonical_set(key)
    if canonical == "skimage":
        return _skimage_records()
    if canonical is not None:
        root = resolve_data_root(data_root)
        folder = root / canonical
        if not folder.is_dir():
            raise FileNotFoundError(f"set {canonical!r} not found: {folder} does not exist")
        return _folder_records(folder, canonical)
    folder = Path(key).expanduser()
    if folder.is_dir():
        return _folder_records(folder, folder.name)
    raise ValueError(f"unknown set {key!r}: use one of {', '.join(known_sets())} or a folder of images")


def load_image(record: ImageRecord | str | os.PathLike) -> np.ndarray:
    """Read a record (or a path) as uint8 H×W×3 or H×W."""
    return read_image(record.path if isinstance(record, ImageRecord) else record)


def read_manifest(data_root: str | os.PathLike | None = None) -> list[dict]:
    """Rows of ``MANIFEST.tsv`` (set, path, sha256, bytes, width, height, channels)."""
    path = resolve_data_root(data_root) / "MANIFEST.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"no MANIFEST.tsv in {path.parent}")
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


@dataclass
class DataCheck:
    """Outcome of :func:`check_data_root`: paths (``Set5/baby.png``) that are missing, altered (sha256 or size
    differs from ``MANIFEST.tsv``) or extra (an image in a set's folder that the manifest does not list)."""

    root: Path
    checked: int = 0
    ok: int = 0
    missing: list[str] = field(default_factory=list)
    altered: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.missing and not self.altered and not self.extra and self.checked > 0

    def problems(self) -> str:
        """One line: ``1 extra (Set5/zebra.png), 2 missing (…)``; empty when nothing is wrong."""
        parts = []
        for what, items in (("extra", self.extra), ("missing", self.missing), ("altered", self.altered)):
            if items:
                shown = ", ".join(items[:3]) + (f", … ({len(items) - 3} more)" if len(items) > 3 else "")
                parts.append(f"{len(items)} {what} ({shown})")
        return ", ".join(parts)


class DataMismatchError(ValueError):
    """A named benchmark set whose files are not the ones ``MANIFEST.tsv`` lists."""


def check_data_root(data_root: str | os.PathLike | None = None, sets: list[str] | None = None,
                    progress: bool = False, *, contents: list[str] | None = None) -> DataCheck:
    """Verify a data root against ``MANIFEST.tsv``: every listed file present with its size and sha256, and no
    image in a set's folder that the manifest does not list.

    Args:
        sets: only these sets (names or aliases); each must be one the manifest lists.
        contents: hash only these manifest paths (the others are checked for presence and size); default: all.

    Raises:
        FileNotFoundError: no data root or no ``MANIFEST.tsv``. ValueError: a set the manifest does not list.
    """
    root = resolve_data_root(data_root)
    rows = read_manifest(root)
    listed = sorted({r["set"] for r in rows})
    if sets:
        wanted = {_ALIASES.get(s.lower(), s) for s in sets}
        unknown = sorted(wanted - set(listed))
        if unknown:
            raise ValueError(f"{root / 'MANIFEST.tsv'} lists no set {', '.join(map(repr, unknown))}; it lists "
                             f"{', '.join(listed)}")
        rows = [r for r in rows if r["set"] in wanted]
    hashed = None if contents is None else set(contents)
    report = DataCheck(root)
    it = rows
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(rows, desc="sha256", unit="file")
    for r in it:
        report.checked += 1
        p = root / r["path"]
        if not p.is_file():
            report.missing.append(r["path"])
        elif str(p.stat().st_size) != r["bytes"] or ((hashed is None or r["path"] in hashed)
                                                     and sha256_file(p) != r["sha256"]):
            report.altered.append(r["path"])
        else:
            report.ok += 1
    known = {r["path"] for r in rows}
    for set_name in sorted({r["set"] for r in rows}):
        folder = root / set_name
        if folder.is_dir():
            listed = [f"{set_name}/{p.name}" for p in _image_files(folder)]
            report.extra += [p for p in listed if p not in known]
    return report


def verify_named_set(name: str, data_root: str | os.PathLike | None = None,
                     records: list[ImageRecord] | None = None) -> bool:
    """Whether the named set ``name`` of the data root is exactly the one ``MANIFEST.tsv`` lists.

    Scores labelled ``Set5`` are compared with everyone else's ``Set5``; an extra, missing or altered image
    makes them incomparable, so such a set is refused rather than scored under its name.

    Args:
        records: the images about to be used (their sha256 is checked); default: all of the set.

    Returns:
        True when the set was verified; False when it cannot be (no ``MANIFEST.tsv``, or the manifest does not
        list the set): its scores then stand without published values.

    Raises:
        DataMismatchError: the set's files differ from the manifest (the message lists what differs).
    """
    canonical = canonical_set(name)
    if canonical is None or canonical in EMBEDDED_SETS:
        return False
    root = resolve_data_root(data_root)
    if not (root / "MANIFEST.tsv").is_file():
        return False
    rows = read_manifest(root)
    if not any(r["set"] == canonical for r in rows):
        return False
    contents = None if records is None else [f"{canonical}/{r.path.name}" for r in records]
    rep = check_data_root(root, [canonical], contents=contents)
    if not rep.passed:
        raise DataMismatchError(
            f"{canonical} in {root} does not match its MANIFEST.tsv: {rep.problems()}. A named benchmark set is "
            f"scored only when it holds exactly its published images (see: ignn-lab data check); to score other "
            f"images, pass their folder as a path (it is scored without published values)")
    return True
