"""Super-resolve images that have no ground truth: an image or a folder in, PNGs out (``ignn-lab upscale``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from ignn_lab.data.io import IMAGE_SUFFIXES, read_image, write_image

__all__ = ["list_inputs", "upscale"]


def list_inputs(inputs: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """The image files named by ``inputs``.

    Args:
        inputs: an image file, a folder (its images with a known suffix, not recursive, sorted by name), or a
            list of image files.

    Returns:
        The paths, in order.

    Raises:
        FileNotFoundError: a path does not exist. ValueError: a folder holds no images.
    """
    if isinstance(inputs, (str, os.PathLike)):
        p = Path(inputs).expanduser()
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise ValueError(f"{p}: the folder holds no images (accepted suffixes: {', '.join(IMAGE_SUFFIXES)})")
            return files
        items = [p]
    else:
        items = [Path(x).expanduser() for x in inputs]
        if not items:
            raise ValueError("upscale: no inputs given")
    for f in items:
        if not f.is_file():
            raise FileNotFoundError(f"no image file at {f}")
    return items


def _output_paths(files: list[Path], out: Path) -> list[Path]:
    dst = [out / f"{f.stem}.png" for f in files]
    seen: dict[Path, Path] = {}
    for f, d in zip(files, dst):
        if d in seen:
            raise ValueError(f"{seen[d].name} and {f.name} would both be written to {d}; rename one of them")
        if d.resolve() == f.resolve():
            raise ValueError(f"{f} would be overwritten by its own result; choose another --out folder")
        seen[d] = f
    return dst


def upscale(inputs: str | os.PathLike | Sequence[str | os.PathLike], *, model: nn.Module | str | os.PathLike,
            scale: int, out: str | os.PathLike, tile: int | None = None, self_ensemble: bool = False,
            device: str | torch.device = "cpu", dtype: str | torch.dtype = "float32",
            progress: bool = True) -> list[Path]:
    """Super-resolve every input image and write ``out/<name>.png`` (atomically).

    Args:
        inputs: an image, a folder of images, or a list of images (8-bit RGB or grey; grey stays grey).
        model: a kit checkpoint, a released IGNN ``.pth``, a registry name (untrained: warns) or an ``nn.Module``.
        scale: 2, 3 or 4.
        out: the output folder (created).
        tile: LR tile side for tiled inference; None: chosen from the default memory budget.
        self_ensemble: ×8 flip/transpose ensemble.
        device: "cpu" or "cuda[:N]". dtype: "float32", or "bfloat16"/"float16" on CUDA.
        progress: a tqdm bar over the images.

    Returns:
        The written PNG paths, in input order (each ``scale``× the input's size, uint8).
    """
    from ignn_lab.engine.inference import model_predictor

    files = list_inputs(inputs)
    out = Path(out).expanduser()
    dst = _output_paths(files, out)
    pred = model_predictor(model, scale, device=device or "cpu", dtype=dtype or "float32",
                           self_ensemble=self_ensemble, tile=tile, progress=progress)
    written = []
    for f, d in zip(tqdm(files, desc=f"upscale ×{scale}", disable=not progress or len(files) < 2), dst):
        img = read_image(f)
        t = torch.from_numpy(img)
        t = t[None] if t.ndim == 2 else t.permute(2, 0, 1).contiguous()
        sr = pred(t)
        arr = sr[0].numpy() if sr.shape[0] == 1 else sr.permute(1, 2, 0).contiguous().numpy()
        written.append(write_image(d, np.ascontiguousarray(arr)))
    return written
