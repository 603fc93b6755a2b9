"""Load a released IGNN checkpoint (``sczhou/IGNN``, spec §8) onto the kit's IGNN.

The release saves ``{'net_state_dict': ..., 'epoch_idx', 'best_PSNR', 'best_epoch', 'solver_state_dict'}``
from a ``DataParallel`` net, so keys start with ``module.``. Our module names are the release's, except the
frozen VGG head, registered twice there (``vggnet.*`` and the alias ``graph.embedcnn.*``) and once here
(``gcn.embed.*``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ignn_lab.models.checkpoint import read_checkpoint, state_dict_problems
from ignn_lab.models.config import IGNNConfig
from ignn_lab.models.ignn import IGNN

_VGG_PREFIXES = ("vggnet.", "graph.embedcnn.")
_OURS_VGG = "gcn.embed."

__all__ = ["OfficialCheckpointError", "load_official", "map_official_state_dict", "released_size"]


class OfficialCheckpointError(ValueError):
    """A released checkpoint does not fit the requested network (one line: the counts and the first keys of every
    kind of problem)."""


_ACCEPTED = "expected a released IGNN checkpoint (sczhou/IGNN: {'net_state_dict': ...}) or its state dict"


def _read(path_or_dict: str | os.PathLike | dict) -> tuple[dict[str, Tensor], str]:
    """(the state dict, how messages name it)."""
    if isinstance(path_or_dict, (str, os.PathLike)):
        source = str(Path(path_or_dict).expanduser())
        try:
            obj = read_checkpoint(source)
        except FileNotFoundError:
            raise FileNotFoundError(f"no released IGNN checkpoint at {source}") from None
        except ValueError as exc:
            raise OfficialCheckpointError(str(exc)) from None
    elif isinstance(path_or_dict, dict):
        obj, source = path_or_dict, "the checkpoint dict"
    else:
        raise TypeError(f"load_official expects a path or a dict, got {type(path_or_dict).__name__}")
    if isinstance(obj, dict) and "net_state_dict" in obj:
        obj = obj["net_state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        raise OfficialCheckpointError(f"{source} holds no state dict of tensors; {_ACCEPTED}")
    return obj, source


def released_size(state: dict[str, Tensor]) -> dict[str, int]:
    """``scale``, ``n_feats`` and ``n_resblocks`` a released IGNN state dict was trained with, as far as its
    tensors tell (keys with or without ``module.``): the width from the head, the depth from the residual
    blocks, the scale from the upsampler (×3: one 9C conv; ×2: one 4C conv and an RGB tail; ×4: two 4C convs)."""
    keys = {k.removeprefix("module."): v for k, v in state.items()}
    out = {}
    head = keys.get("head.0.weight")
    if head is not None and head.ndim == 4:
        out["n_feats"] = int(head.shape[0])
    blocks = {tuple(k.split(".")[:2]) for k in keys if k.startswith(("body1.", "body2.")) and ".body." in k}
    if blocks:
        out["n_resblocks"] = len(blocks)
    up, tail = keys.get("upsample.0.weight"), keys.get("tail.0.0.weight")
    if up is not None and up.ndim == 4 and up.shape[1] > 0:
        ratio = up.shape[0] // up.shape[1]
        if ratio == 9:
            out["scale"] = 3
        elif ratio == 4 and tail is not None:
            out["scale"] = 4 if tail.shape[0] == up.shape[0] else 2
    return out


def map_official_state_dict(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """Strip ``module.`` and rename ``vggnet.*``/``graph.embedcnn.*`` to ``gcn.embed.*``.

    Returns:
        (mapped state dict, problems): problems lists aliased VGG keys whose two copies differ.
    """
    mapped: dict[str, Tensor] = {}
    origin: dict[str, str] = {}
    problems: list[str] = []
    for key, value in state.items():
        name = key.removeprefix("module.")
        for pre in _VGG_PREFIXES:
            if name.startswith(pre):
                name = _OURS_VGG + name[len(pre):]
                break
        if name in mapped:  # the alias of a VGG tensor already seen
            same = mapped[name].shape == value.shape and torch.equal(mapped[name], value)
            if not same:
                problems.append(f"{origin[name]} and {key} are aliases of {name} but differ")
            continue
        mapped[name] = value
        origin[name] = key
    return mapped, problems


def load_official(path_or_dict: str | os.PathLike | dict, scale: int, n_feats: int = 256,
                  n_resblocks: int = 32, *, window: int | None = 30, window_centering: str = "released",
                  window_mode: str = "sticky", source: str | None = None, **overrides: Any) -> IGNN:
    """An IGNN carrying a released checkpoint's weights, with the release's window semantics by default.

    Args:
        path_or_dict: a ``.pth`` path, the loaded checkpoint dict, or its ``net_state_dict``; keys with or
            without ``module.``. Files are read with ``torch.load(..., weights_only=True)``.
        scale: 2, 3 or 4. n_feats, n_resblocks: the checkpoint's size (256, 32 for the released models).
        window: the search window (``WINDOW_SIZE``, 30).
        window_centering: ``released`` (``⌊i/2⌋ - ⌊s/g⌋``, default) or ``corrected``.
        window_mode: ``sticky`` (the release's process-wide switch to global search, here per model, default)
            or ``per-call``.
        source: how error messages name the checkpoint (default: its path, or "the checkpoint dict").
        **overrides: further :class:`IGNNConfig` / graph fields (e.g. ``knn_backend``, ``res_scale``).

    Returns:
        The model (float32, eval mode). Call ``model.double()`` for float64.

    Raises:
        OfficialCheckpointError: a file that is not a released checkpoint, a checkpoint of another scale, or one
            whose tensors do not fit (one line: counts and the first keys of each kind).
    """
    state, read_from = _read(path_or_dict)
    source = source or read_from
    found = released_size(state).get("scale")
    if found is not None and found != scale:
        raise OfficialCheckpointError(f"{source} is a released IGNN ×{found} checkpoint (its upsampler says so), "
                                      f"but scale={scale} was asked for; use it at ×{found}")
    cfg = IGNNConfig(scale=scale, n_feats=n_feats, n_resblocks=n_resblocks).replace(
        window=window, window_centering=window_centering, window_mode=window_mode, embedding="vgg-random",
        **overrides)
    model = IGNN(cfg, init_embedding=False)
    mapped, aliases = map_official_state_dict(state)
    own = model.state_dict()
    problems = state_dict_problems(own, mapped)
    if aliases:
        problems = "; ".join(p for p in (problems, f"alias conflict ({len(aliases)}): " + ", ".join(aliases)) if p)
    if problems:
        raise OfficialCheckpointError(f"{source} does not fit IGNN(scale={scale}, n_feats={n_feats}, "
                                      f"n_resblocks={n_resblocks}): {problems}; {_ACCEPTED} of that size")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in mapped.items()}, strict=True)
    return model.eval()
