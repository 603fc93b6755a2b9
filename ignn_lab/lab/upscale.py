"""Super-resolve images that have no ground truth: an image or a folder in, PNGs out (``ignn-lab upscale``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from ignn_lab.data.convert import to_chw, to_hwc
from ignn_lab.data.io import IMAGE_SUFFIXES, probe_image, read_image, write_image
from ignn_lab.data.outputs import OutputSet
from ignn_lab.engine.options import PredictOptions

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


def _output_names(files: list[Path]) -> list[str]:
    names = [f"{f.stem}.png" for f in files]
    seen: dict[str, Path] = {}
    for f, n in zip(files, names, strict=True):
        if n in seen:
            raise ValueError(f"{seen[n].name} and {f.name} would both be written as {n}; rename one of them")
        seen[n] = f
    return names


def upscale(inputs: str | os.PathLike | Sequence[str | os.PathLike], *, model: nn.Module | str | os.PathLike,
            scale: int, out: str | os.PathLike, tile: int | None = None, self_ensemble: bool = False,
            device: str | torch.device = "cpu", dtype: str | torch.dtype = "float32",
            progress: bool = True, options: PredictOptions | None = None) -> list[Path]:
    """Super-resolve every input image and write ``out/<name>.png``.

    Every input's header is checked first (format, bit depth, size), and the outputs are written as one set
    (``ignn_lab.data.outputs``): a run that fails leaves ``out`` as it was.

    Args:
        inputs: an image, a folder of images, or a list of images (8-bit RGB or grey; grey stays grey).
        model: a kit checkpoint, a released IGNN ``.pth``, a shipped checkpoint name, a registry name
            (untrained: warns), an ``nn.Module``, ``bicubic`` or ``graphagg-star``.
        scale: 2, 3 or 4.
        out: the output folder (created). It may not hold an input under an output's name.
        tile: LR tile side for tiled inference; None: chosen from the default memory budget.
        self_ensemble: ×8 flip/transpose ensemble.
        device: "cpu" or "cuda[:N]". dtype: "float32", or "bfloat16"/"float16" on CUDA.
        progress: a tqdm bar over the images.
        options: a :class:`~ignn_lab.engine.options.PredictOptions` instead of ``tile`` … ``dtype`` (which must
            then keep their defaults).

    Returns:
        The written PNG paths, in input order (each ``scale``× the input's size, uint8).
    """
    from ignn_lab.engine.predictors import get_predictor

    if options is None:
        options = PredictOptions(device=device or "cpu", dtype=dtype or "float32", tile=tile,
                                 self_ensemble=self_ensemble)
    elif (tile, self_ensemble, device, dtype) != (None, False, "cpu", "float32"):
        raise ValueError("give tile, self_ensemble, device and dtype either in options or as keywords, not both")
    files = list_inputs(inputs)
    names = _output_names(files)
    pred = get_predictor(model, scale, options, progress=progress)
    for f in files:
        info = probe_image(f)
        if min(info.width, info.height) < pred.min_lr_side:
            raise ValueError(f"{f}: {info.width}×{info.height} pixels is too small for {pred.name} at ×{scale}; it "
                             f"takes images of at least {pred.min_lr_side}×{pred.min_lr_side}")
    with OutputSet(out, names, inputs=files, what="output folder (--out)") as outs:
        for f, n in zip(tqdm(files, desc=f"upscale ×{scale}", disable=not progress or len(files) < 2), names,
                        strict=True):
            write_image(outs.path(n), to_hwc(pred(to_chw(read_image(f)))))
    return [outs.final(n) for n in names]
