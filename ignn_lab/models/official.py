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

from ignn_lab.models.config import IGNNConfig
from ignn_lab.models.ignn import IGNN

_VGG_PREFIXES = ("vggnet.", "graph.embedcnn.")
_OURS_VGG = "gcn.embed."

__all__ = ["OfficialCheckpointError", "load_official", "map_official_state_dict"]


class OfficialCheckpointError(ValueError):
    """A released checkpoint does not fit the requested network (lists every problem key in one message)."""


def _read(path_or_dict: str | os.PathLike | dict) -> dict[str, Tensor]:
    if isinstance(path_or_dict, (str, os.PathLike)):
        p = Path(path_or_dict).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"no released IGNN checkpoint at {p}")
        try:
            obj = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle/zip errors: say what the file is not
            raise OfficialCheckpointError(f"{p} could not be read as a torch checkpoint with "
                                          f"weights_only=True ({type(exc).__name__}: {exc})") from exc
    elif isinstance(path_or_dict, dict):
        obj = path_or_dict
    else:
        raise TypeError(f"load_official expects a path or a dict, got {type(path_or_dict).__name__}")
    if isinstance(obj, dict) and "net_state_dict" in obj:
        obj = obj["net_state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise OfficialCheckpointError("expected a released IGNN checkpoint ({'net_state_dict': {...}}) or a "
                                      "state dict of tensors")
    return obj


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
                  window_mode: str = "sticky", **overrides: Any) -> IGNN:
    """An IGNN carrying a released checkpoint's weights, with the release's window semantics by default.

    Args:
        path_or_dict: a ``.pth`` path, the loaded checkpoint dict, or its ``net_state_dict``; keys with or
            without ``module.``. Files are read with ``torch.load(..., weights_only=True)``.
        scale: 2, 3 or 4. n_feats, n_resblocks: the checkpoint's size (256, 32 for the released models).
        window: the search window (``WINDOW_SIZE``, 30).
        window_centering: ``released`` (``⌊i/2⌋ - ⌊s/g⌋``, default) or ``corrected``.
        window_mode: ``sticky`` (the release's process-wide switch to global search, here per model, default)
            or ``per-call``.
        **overrides: further :class:`IGNNConfig` / graph fields (e.g. ``knn_backend``, ``res_scale``).

    Returns:
        The model (float32, eval mode). Call ``model.double()`` for float64.

    Raises:
        OfficialCheckpointError: listing every missing, unexpected and shape-mismatched key in one message.
    """
    state = _read(path_or_dict)
    cfg = IGNNConfig(scale=scale, n_feats=n_feats, n_resblocks=n_resblocks).replace(
        window=window, window_centering=window_centering, window_mode=window_mode, embedding="vgg-random",
        **overrides)
    model = IGNN(cfg, init_embedding=False)
    mapped, problems = map_official_state_dict(state)
    own = model.state_dict()
    missing = [k for k in own if k not in mapped]
    unexpected = [k for k in mapped if k not in own]
    mismatched = [f"{k}: checkpoint {tuple(mapped[k].shape)} vs model {tuple(v.shape)}"
                  for k, v in own.items() if k in mapped and mapped[k].shape != v.shape]
    if missing or unexpected or mismatched or problems:
        lines = [f"released checkpoint does not fit IGNN(scale={scale}, n_feats={n_feats}, "
                 f"n_resblocks={n_resblocks}):"]
        for title, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched),
                             ("alias conflict", problems)):
            if items:
                lines.append(f"  {title} ({len(items)}): " + ", ".join(items))
        raise OfficialCheckpointError("\n".join(lines))
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in mapped.items()}, strict=True)
    return model.eval()
