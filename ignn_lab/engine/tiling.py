"""Tiling geometry for large images: tile layout, per-model tiling rules, activation-memory measurement.

A tile is a rectangle of the LR image that the network sees whole; only its *kept* part (the tile minus an
overlap on the sides that face other tiles) is written into the stitched result. Tile starts are multiples of an
alignment, so that stride-2 patch grids, son grids (LR/g) and search windows of a tile sit exactly where they sit
in the whole image.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

__all__ = ["Span", "tile_spans", "LiveBytes", "peak_activation_bytes", "max_square_tile", "TileRules", "tile_rules",
           "receptive_radius", "search_latched"]


@dataclass(frozen=True)
class Span:
    """One tile along one dimension, in LR pixels.

    Attributes:
        start, stop: the tile, ``[start, stop)``; ``start`` is a multiple of the alignment.
        keep_start, keep_stop: the part of the tile that goes into the result (``start ≤ keep_start <
            keep_stop ≤ stop``). The kept parts of all spans partition ``[0, length)``.
    """

    start: int
    stop: int
    keep_start: int
    keep_stop: int


def _starts(length: int, tile: int, overlap: int, align: int) -> list[int]:
    last = (length - tile) // align * align  # the last tile is [last, length): between tile and tile+align-1 long
    for n in range(2, length + 2):
        starts = [i * last // (n - 1) // align * align for i in range(n - 1)] + [last]
        ends = [s + tile for s in starts[:-1]] + [length]
        if all(ends[i] - starts[i + 1] >= 2 * overlap for i in range(n - 1)):
            return sorted(set(starts))
    raise RuntimeError(f"no tiling of {length} with tile={tile}, overlap={overlap}, align={align}")  # unreachable


def tile_spans(length: int, tile: int, overlap: int, align: int = 1) -> list[Span]:
    """Split ``[0, length)`` into overlapping tiles with aligned starts.

    Args:
        length: image side in LR pixels, ≥ 1.
        tile: the tile side (the network input), ≥ 1. A ``length`` up to ``tile`` gives a single tile; otherwise
            every tile is ``tile`` long except the last, which ends at ``length`` and is ``tile`` to
            ``tile + align - 1`` long.
        overlap: context in pixels kept on each inner side of a tile (≥ 0); neighbouring tiles overlap by at least
            ``2·overlap`` and the seam between them lies in the middle of the overlap.
        align: tile starts are multiples of this (≥ 1).

    Returns:
        The spans in order. Their kept parts partition ``[0, length)``.
    """
    for name, v, lo in (("length", length, 1), ("tile", tile, 1), ("overlap", overlap, 0), ("align", align, 1)):
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise ValueError(f"tile_spans: {name} must be an int ≥ {lo}, got {v!r}")
    if length <= tile:
        return [Span(0, length, 0, length)]
    if tile < 2 * overlap + align:
        raise ValueError(f"tile_spans: a tile of {tile} cannot hold an overlap of {overlap} on both sides at an "
                         f"alignment of {align}; use tile ≥ {2 * overlap + align}")
    starts = _starts(length, tile, overlap, align)
    stops = [s + tile for s in starts[:-1]] + [length]
    seams = [(stops[i] + starts[i + 1]) // 2 for i in range(len(starts) - 1)]
    keeps = [0] + seams + [length]
    return [Span(a, b, keeps[i], keeps[i + 1]) for i, (a, b) in enumerate(zip(starts, stops))]


class LiveBytes(TorchDispatchMode):
    """Counts the bytes of tensor storages created inside the mode and still alive; keeps the peak.

    Storages that existed before entering (weights, inputs) are not counted. Scratch memory that kernels allocate
    internally is invisible here, so treat the peak as a lower bound of the process's growth.
    """

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.peak = 0
        self._seen: dict[int, int] = {}

    def _release(self, key: int, nbytes: int) -> None:
        if self._seen.pop(key, None) is not None:
            self.current -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor) or t.device.type == "meta":
                continue
            st = t.untyped_storage()
            key, nbytes = st.data_ptr(), st.nbytes()
            if nbytes == 0 or key in self._seen:
                continue
            self._seen[key] = nbytes
            self.current += nbytes
            self.peak = max(self.peak, self.current)
            weakref.finalize(st, self._release, key, nbytes)
        return out


def peak_activation_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes of tensors that ``fn()`` allocates and holds at once (its result is dropped).

    Args:
        fn: a callable that runs a forward pass, e.g. ``lambda: model(x)``; run under ``torch.inference_mode``
            by the caller so that no autograd graph is kept.

    Returns:
        The peak, in bytes (≥ 0).
    """
    mode = LiveBytes()
    with mode:
        out = fn()
        del out
    return int(mode.peak)


def max_square_tile(bytes_per_pixel: float, budget_bytes: float, align: int) -> int:
    """Largest side ``T`` (a multiple of ``align``) with ``bytes_per_pixel·(T + align)² ≤ budget_bytes``."""
    if bytes_per_pixel <= 0:
        raise ValueError(f"bytes_per_pixel must be positive, got {bytes_per_pixel}")
    side = int(math.sqrt(max(budget_bytes, 0.0) / bytes_per_pixel)) - align
    return max(side // align * align, align)


@dataclass(frozen=True)
class TileRules:
    """How a model may be tiled.

    Attributes:
        graph_scale: g (the son is LR/g); 1 for models without a graph.
        align: tile starts are multiples of this (LR pixels).
        min_tile: the smallest tile side for which a tile's search window equals the whole image's.
        min_side: the smallest image side the model accepts; smaller images are edge-padded, then cropped.
        exact: False when no overlap can make tiles equal the whole image (global search, dense non-local
            attention, the sticky window switch, the released ×3 window centring); ``reason`` says why.
    """

    graph_scale: int
    align: int
    min_tile: int
    min_side: int
    exact: bool
    reason: str = ""


def _graph_config(model: nn.Module):
    cfg = getattr(model, "config", None)
    return getattr(cfg, "graph", None) if getattr(cfg, "aggregation", "graph") == "graph" else None


def search_latched(model: nn.Module) -> bool:
    """True when a ``window_mode="sticky"`` model has switched itself to global search (spec §9.1)."""
    return bool(getattr(getattr(model, "gcn", None), "window_latched", False))


def tile_rules(model: nn.Module, scale: int) -> TileRules:
    """Alignment and size rules for tiling ``model`` (kit configs; unknown models get safe defaults).

    Args:
        model: a kit network (``model.config``, ``model.needs_son``) or any module called as ``model(lr, son)``.
        scale: the SR factor.

    Returns:
        A :class:`TileRules`.
    """
    cfg = getattr(model, "config", None)
    needs_son = bool(getattr(model, "needs_son", False))
    if getattr(cfg, "aggregation", None) == "nonlocal":
        g = int(cfg.graph_scale)
        return TileRules(g, 4, 1, 1, False, "dense non-local attention sees the whole input")
    gcfg = _graph_config(model)
    if gcfg is None and not needs_son:
        return TileRules(1, 1, 1, 1, True)
    g = int(getattr(cfg, "graph_scale", 3 if scale == 3 else 2))
    p, t, k = (gcfg.patch_size, gcfg.stride, gcfg.k) if gcfg is not None else (3, 2, 5)
    align = math.lcm(g * t, 2 * t)  # son grid at LR offsets of g·t; the released ⌊i/2⌋ centring needs 2t
    min_side = max(g * p, g * t * math.ceil(math.sqrt(k)))
    if gcfg is None:  # a module outside the kit that takes a son: aligned tiles, locality assumed
        return TileRules(g, align, align, min_side, True)
    window = gcfg.window
    if window is None:
        return TileRules(g, align, 1, min_side, False, "global search (window=None) sees the whole son")
    side_needed = window + 1  # son grid of every split tile > window: same square side, no global fallback
    min_tile = math.ceil(g * (t * (side_needed - 1) + p) / align) * align
    reason = ""
    if search_latched(model):
        reason = "window_mode='sticky' has switched this model to global search (gcn.reset_window() undoes it)"
    elif gcfg.window_centering == "released" and g != 2:
        reason = "the released ×3 window centring is not translation invariant"
    return TileRules(g, align, max(min_tile, align), min_side, not reason, reason)


def receptive_radius(model: nn.Module, scale: int) -> int:
    """A conservative bound, in LR pixels, on how far an output pixel's value depends on the input.

    Every convolution counts ``dilation·(kernel-1)/2`` as if it ran at LR resolution (over-counting the HR
    layers; ×(g+1) with ``embedding="features"``, whose son features run at son resolution); a kit graph adds the
    reach of its search window, ``g·(t·(window/2 + 2) + p + 2)``. Tiles with this
    overlap reproduce the untiled output up to float rounding (when :func:`tile_rules` says ``exact``). Modules
    outside the kit are assumed to be local (their son, if any, only read near each pixel).

    Returns:
        The radius (≥ 0); ``2**30`` when no overlap suffices (``tile_rules(...).exact`` is False).
    """
    r = 0
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            r += max(m.dilation[i] * (m.kernel_size[i] - 1) // 2 for i in (0, 1))
    rules = tile_rules(model, scale)
    if not rules.exact:
        return 1 << 30
    gcfg = _graph_config(model)
    if gcfg is not None:
        if gcfg.embedding == "features":  # the son's features come from the backbone run at son resolution
            r *= rules.graph_scale + 1
        r += rules.graph_scale * (gcfg.stride * (gcfg.window // 2 + 2) + gcfg.patch_size + 2)
    return r
