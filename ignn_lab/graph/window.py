"""Search windows of the cross-scale graph (spec §4, ``index_neighbours``)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

Centering = Literal["corrected", "released"]

__all__ = ["Centering", "effective_window", "window_starts", "window_table"]


def effective_window(window: int | None, son_grid: tuple[int, int]) -> int | None:
    """The square window side used for a son grid, or None for a global search.

    ``None`` (global) when ``window`` is None or covers the whole son grid (``ws ≥ n1`` and ``ws ≥ n2``);
    otherwise ``min(ws, n1, n2)``: the window is always square and shrinks in both dimensions.
    """
    if window is None:
        return None
    if window < 1:
        raise ValueError(f"window must be a positive int or None, got {window}")
    n1, n2 = son_grid
    if window >= n1 and window >= n2:
        return None
    return min(window, n1, n2)


def window_starts(n_query: int, n_son: int, side: int, graph_scale: int, centering: Centering = "corrected",
                  device: torch.device | str | None = None) -> Tensor:
    """Start (row or column) of the window for each query grid coordinate ``0..n_query-1``.

    ``corrected``: ``clamp(⌊i/g⌋ - ⌊s/2⌋, 0, n - s)``; ``released``: ``clamp(⌊i/2⌋ - ⌊s/g⌋, 0, n - s)``.
    The two coincide for g = 2.
    """
    i = torch.arange(n_query, device=device)
    if centering == "corrected":
        start = torch.div(i, graph_scale, rounding_mode="floor") - side // 2
    elif centering == "released":
        start = torch.div(i, 2, rounding_mode="floor") - side // graph_scale
    else:
        raise ValueError(f"centering must be 'corrected' or 'released', got {centering!r}")
    return start.clamp_(0, n_son - side)


def window_table(query_grid: tuple[int, int], son_grid: tuple[int, int], side: int, graph_scale: int,
                 centering: Centering = "corrected", *, order: Literal["row", "column"] = "row",
                 device: torch.device | str | None = None) -> Tensor:
    """Son indices of every query's window: M×s² int64 (M = m1·m2, queries row-major).

    ``order="column"`` enumerates each window column-major, exactly as the released table ``I``;
    ``order="row"`` enumerates row-major, i.e. in increasing son index (used for lowest-index tie breaking).
    """
    (m1, m2), (n1, n2) = query_grid, son_grid
    r0 = window_starts(m1, n1, side, graph_scale, centering, device)
    c0 = window_starts(m2, n2, side, graph_scale, centering, device)
    off = torch.arange(side, device=device)
    rows = (r0[:, None] + off[None, :])  # m1×s
    cols = (c0[:, None] + off[None, :])  # m2×s
    if order == "row":
        tab = rows[:, None, :, None] * n2 + cols[None, :, None, :]  # m1×m2×s(r)×s(c)
    elif order == "column":
        tab = rows[:, None, None, :] * n2 + cols[None, :, :, None]  # m1×m2×s(c)×s(r)
    else:
        raise ValueError(f"order must be 'row' or 'column', got {order!r}")
    return tab.reshape(m1 * m2, side * side)
