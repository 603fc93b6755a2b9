"""The one resolver from a model argument to a Predictor, with the options checked against the model.

A model argument is, in the order tried: ``bicubic`` (the protocol's baseline), ``graphagg-star`` (the
non-learned cross-scale aggregation), an ``nn.Module``, an existing checkpoint file (a kit checkpoint or a
released IGNN ``.pth``, told apart by content), a shipped checkpoint name, or a registry name (random weights).

Which options apply:

============== =========================================== =================================================
model          run options (:data:`~.options.RUN_FIELDS`)   switches
============== =========================================== =================================================
bicubic        none                                         none
graphagg-star  ``device``                                   the keywords of ``graphagg_star`` (``k``,
                                                            ``window``, ``embedding``, ``weighting``, ``adapn``,
                                                            ``cross_scale``, ``patch_size``, ``backend``)
a network      all                                          its config fields (``window``, ``knn_backend`` …);
                                                            none for an already built ``nn.Module``
============== =========================================== =================================================

Anything else is a ValueError that names the option and says what the model takes, raised when the predictor is
built, before any image is read.
"""

from __future__ import annotations

import inspect
import os
from typing import Any, Callable, Protocol

import torch
from torch import Tensor

from ignn_lab.data.convert import on_rgb
from ignn_lab.data.imresize import imresize
from ignn_lab.engine.options import PredictOptions

__all__ = ["Predictor", "bicubic_predictor", "get_predictor", "graphagg_star_predictor", "is_graphagg"]

_GRAPHAGG_NAMES = ("graphagg-star", "graphagg*")


class Predictor(Protocol):
    """uint8 C×H×W LR (C ∈ {1, 3}) → uint8 C×sH×sW SR.

    Attributes:
        name: shown in result tables.
        parallel_safe: True only when it may be called from several threads at once.
        min_lr_side: the smallest LR side it accepts.
        settings: the effective options, JSON-ready with real types (recorded in results.json).
        source: where the model came from (``kind`` and ``path`` or ``name``).
    """

    name: str
    parallel_safe: bool
    min_lr_side: int
    settings: dict
    source: dict

    def __call__(self, lr: Tensor) -> Tensor: ...


class _FnPredictor:
    def __init__(self, name: str, fn: Callable[[Tensor], Tensor], *, parallel_safe: bool, min_lr_side: int,
                 settings: dict, source: dict):
        self.name, self._fn, self.parallel_safe = name, fn, parallel_safe
        self.min_lr_side, self.settings, self.source = min_lr_side, settings, source

    def __call__(self, lr: Tensor) -> Tensor:
        return self._fn(lr)


def is_graphagg(model: Any) -> bool:
    return isinstance(model, str) and model.lower() in _GRAPHAGG_NAMES


def _check_scale(model: str, scale: Any) -> None:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 2:
        raise ValueError(f"{model}: scale must be an int ≥ 2 (super-resolution), got {scale!r}")


def bicubic_predictor(scale: int) -> _FnPredictor:
    """MATLAB bicubic upscaling of the uint8 LR (the protocol's baseline)."""
    _check_scale("bicubic", scale)
    return _FnPredictor("bicubic", lambda lr: imresize(lr, float(scale)), parallel_safe=True, min_lr_side=1,
                        settings={}, source={"kind": "bicubic"})


def _graphagg_switches(given: dict[str, Any]) -> dict[str, Any]:
    """``graphagg_star``'s keyword defaults with ``given`` applied and checked (name, type, choice)."""
    from ignn_lab.graph.aggregate import MATCH_EMBEDDINGS, WEIGHTINGS, graphagg_star

    params = {n: p.default for n, p in inspect.signature(graphagg_star).parameters.items()
              if p.kind is inspect.Parameter.KEYWORD_ONLY}
    unknown = [k for k in given if k not in params]
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not a switch of graphagg-star; it takes {', '.join(params)} "
                         "and device")
    out = {**params, **given}

    def need(ok: bool, name: str, what: str) -> None:
        if not ok:
            raise ValueError(f"graphagg-star: {name}={out[name]!r}; expected {what}")

    def pos_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 1

    need(pos_int(out["k"]), "k", "a positive int")
    need(out["window"] is None or pos_int(out["window"]), "window", "a positive int or None (global search)")
    need(pos_int(out["patch_size"]) and out["patch_size"] >= 2, "patch_size", "an int ≥ 2")
    need(out["embedding"] in MATCH_EMBEDDINGS, "embedding", f"one of {', '.join(MATCH_EMBEDDINGS)}")
    need(out["weighting"] in WEIGHTINGS, "weighting", f"one of {', '.join(WEIGHTINGS)}")
    for flag in ("adapn", "cross_scale"):
        need(isinstance(out[flag], bool), flag, "True or False")
    need(isinstance(out["backend"], str), "backend", "a backend name")
    return out


def graphagg_star_predictor(scale: int, options: PredictOptions | None = None, **switches: Any) -> _FnPredictor:
    """GraphAgg*, the non-learned cross-scale aggregation (``ignn_lab.graph.aggregate``).

    Args:
        options: ``device`` and the switches (or give the switches as keywords).
    """
    from ignn_lab.graph.aggregate import graphagg_star

    opts = options if options is not None else PredictOptions(switches=switches)
    if options is not None and switches:
        raise ValueError("give the switches in options or as keywords, not both")
    _check_scale("graphagg-star", scale)
    kw = _graphagg_switches(dict(opts.switches))
    opts.check_applies("graphagg-star", ["device", *kw],
                       "it is not a network: tiles, precision and self-ensemble apply to networks")
    device = opts.torch_device()

    def run(x: Tensor) -> Tensor:
        with torch.inference_mode():
            return graphagg_star(x, scale, **kw)

    return _FnPredictor("graphagg-star", lambda lr: on_rgb(run, lr, device=device), parallel_safe=False,
                        min_lr_side=kw["patch_size"] * scale, settings={"device": opts.device, **kw},
                        source={"kind": "graphagg-star"})


def get_predictor(model: str | os.PathLike | torch.nn.Module, scale: int, options: PredictOptions | None = None,
                  *, progress: bool = True, **kwargs: Any) -> Predictor:
    """The Predictor for ``model`` at ``scale`` (module docstring for what a model argument may be).

    Args:
        options: how to run it; or give the options as keywords (``tile=64``, ``window=None`` …), not both.
        progress: tile progress bars of networks.

    Raises:
        ValueError: an option that does not apply to the model, or a model that cannot be resolved.
        FileNotFoundError: a model argument that looks like a path names no file.
    """
    if options is None:
        options = PredictOptions.from_kwargs(**kwargs)
    elif kwargs:
        raise ValueError(f"give the options as a PredictOptions or as keywords, not both ({sorted(kwargs)})")
    if isinstance(model, str) and model.lower() == "bicubic":
        options.check_applies("bicubic", [], "bicubic is the protocol's fixed baseline")
        return bicubic_predictor(scale)
    if is_graphagg(model):
        return graphagg_star_predictor(scale, options)
    from ignn_lab.engine.inference import network_predictor

    return network_predictor(model, scale, options, progress=progress)
