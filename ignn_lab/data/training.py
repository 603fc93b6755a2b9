"""Training data: aligned random LR/HR crops with flips and 90° rotations, and the held-out validation images.

The LR of every training image is made once with the evaluation's MATLAB-exact bicubic (uint8, replicated
borders: the test degradation) from the whole mod-cropped HR image, cached on disk by content hash
(:class:`~ignn_lab.data.degrade.LRCache`), and kept in memory. A crop is an LR window and the HR window ``scale``
times larger at the same place, so the LR crop is exactly what the test degradation makes there.

Sampling is a pure function of ``(seed, rank, step)``: no sampler state, no worker processes, nothing that can
hang, and a resumed run draws exactly the crops the uninterrupted run would have drawn.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import Tensor

from ignn_lab.data.convert import to_chw
from ignn_lab.data.datasets import ImageRecord, list_images, load_image
from ignn_lab.data.degrade import LRCache, modcrop

__all__ = ["PatchSampler", "TrainingImages", "ValImage", "default_cache_dir", "held_out", "load_training_images",
           "load_validation_images", "resolve_set"]


def resolve_set(name: str, data_root=None) -> list[ImageRecord]:
    """The images of a training or validation set: a named set of the data root (``T91``, ``BSD200``, ...), a
    folder, or a folder relative to the data root (``DIV2K/DIV2K_train_HR``)."""
    try:
        return list_images(name, data_root)
    except ValueError:
        from ignn_lab.data.datasets import default_data_root

        root = Path(data_root) if data_root else default_data_root()
        if root is not None and (root / name).is_dir():
            return list_images(str(root / name))
        raise ValueError(f"training/validation set {name!r} is neither a named set, nor a folder, nor a folder "
                         f"under the data root ({root}); give a set name or a path to a folder of images") from None


def default_cache_dir() -> Path:
    """``$IGNN_LAB_CACHE/lr`` (default ``~/.cache/ignn-lab/lr``): where training LR images are cached."""
    root = os.environ.get("IGNN_LAB_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "ignn-lab") / "lr"


def _rgb(img: np.ndarray) -> np.ndarray:
    """H×W grey → H×W×3 (the networks are RGB); H×W×3 unchanged."""
    return np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else img


def held_out(records: list[ImageRecord], count: int) -> list[ImageRecord]:
    """``count`` records spread evenly over the sorted list (the validation images)."""
    n = len(records)
    if count > n:
        raise ValueError(f"val_count={count} but the validation set has only {n} images")
    return [records[int((i + 0.5) * n / count)] for i in range(count)]


@dataclass
class TrainingImages:
    """HR images (mod-cropped) and their LR, uint8 H×W×3, with the records they came from."""

    hr: list[np.ndarray]
    lr: list[np.ndarray]
    records: list[ImageRecord]
    skipped: list[str]


def load_training_images(sets: Iterable[str], scale: int, patch_size: int, *, data_root=None,
                         exclude: Iterable[Path] = (), cache_dir: str | os.PathLike | None = None,
                         progress: bool = True) -> TrainingImages:
    """Read the training sets and make (or load from the cache) each image's LR.

    Args:
        sets: set names of the data root or folders of images.
        scale: the SR factor.
        patch_size: LR crop side; images whose LR is smaller are skipped (listed in ``skipped``).
        exclude: image paths held out (the validation images).

    Raises:
        FileNotFoundError: a set or folder does not exist. ValueError: no usable image is left.
    """
    from tqdm.auto import tqdm

    excluded = {Path(p).resolve() for p in exclude}
    records = [r for s in sets for r in resolve_set(s, data_root) if r.path.resolve() not in excluded]
    cache = LRCache(cache_dir or default_cache_dir())
    hr_list, lr_list, kept, skipped = [], [], [], []
    for rec in tqdm(records, desc=f"training images ×{scale}", unit="img", disable=not progress):
        hr = load_image(rec)
        lr = cache.get(rec.path, scale, hr)
        hr = modcrop(hr, scale)
        if min(lr.shape[:2]) < patch_size:
            skipped.append(f"{rec.set}/{rec.name} (LR {lr.shape[1]}×{lr.shape[0]} < {patch_size})")
            continue
        hr_list.append(np.ascontiguousarray(_rgb(hr)))
        lr_list.append(np.ascontiguousarray(_rgb(lr)))
        kept.append(rec)
    if not kept:
        raise ValueError(f"no training image in {list(sets)} is large enough for LR patches of {patch_size}² at "
                         f"×{scale} ({len(skipped)} too small, {len(excluded)} held out)")
    return TrainingImages(hr_list, lr_list, kept, skipped)


def _d4(a: np.ndarray, t: int) -> np.ndarray:
    """The t-th of the 8 flips/rotations of an H×W×C array."""
    if t & 1:
        a = a[:, ::-1]
    if t & 2:
        a = a[::-1]
    if t & 4:
        a = a.transpose(1, 0, 2)
    return a


class PatchSampler:
    """Random aligned crops: ``batch(step, rank, n)`` → (LR n×3×p×p, HR n×3×sp×sp) float32 in [0, 1].

    An image is drawn with probability proportional to its number of crop positions (every LR position is
    equally likely), then a position and one of the 8 flips/rotations. The draw for ``(seed, rank, step)`` never
    changes, so ranks get disjoint streams and resuming needs no sampler state.
    """

    def __init__(self, images: TrainingImages, scale: int, patch_size: int, seed: int):
        self.images, self.scale, self.patch, self.seed = images, scale, patch_size, seed
        positions = np.array([(lr.shape[0] - patch_size + 1) * (lr.shape[1] - patch_size + 1)
                              for lr in images.lr], dtype=np.float64)
        self.cdf = np.cumsum(positions / positions.sum())
        self.cdf[-1] = 1.0

    def batch(self, step: int, rank: int, n: int) -> tuple[Tensor, Tensor]:
        rng = np.random.Generator(np.random.PCG64([self.seed, rank, step]))
        p, s = self.patch, self.scale
        which = np.searchsorted(self.cdf, rng.random(n), side="right")
        lrs, hrs = [], []
        for i in which:
            lr_img, hr_img = self.images.lr[i], self.images.hr[i]
            y = int(rng.integers(0, lr_img.shape[0] - p + 1))
            x = int(rng.integers(0, lr_img.shape[1] - p + 1))
            t = int(rng.integers(0, 8))
            lrs.append(_d4(lr_img[y: y + p, x: x + p], t))
            hrs.append(_d4(hr_img[s * y: s * (y + p), s * x: s * (x + p)], t))
        lr = torch.from_numpy(np.stack(lrs)).permute(0, 3, 1, 2).float().div_(255.0)
        hr = torch.from_numpy(np.stack(hrs)).permute(0, 3, 1, 2).float().div_(255.0)
        return lr.contiguous(), hr.contiguous()


@dataclass
class ValImage:
    """A validation image: HR (mod-cropped) and LR as uint8 C×H×W tensors (C = 1 for grey)."""

    name: str
    path: Path
    hr: Tensor
    lr: Tensor


def load_validation_images(val_set: str, count: int, scale: int, *, data_root=None,
                           cache_dir: str | os.PathLike | None = None) -> list[ValImage]:
    """The ``count`` held-out images of ``val_set`` (see :func:`held_out`) with their protocol LR."""
    if count == 0:
        return []
    cache = LRCache(cache_dir or default_cache_dir())
    out = []
    for rec in held_out(resolve_set(val_set, data_root), count):
        hr = load_image(rec)
        lr = cache.get(rec.path, scale, hr)
        out.append(ValImage(f"{rec.set}/{rec.name}", rec.path, to_chw(modcrop(hr, scale)), to_chw(lr)))
    return out
