"""Tiling of a windowed search: which queries share a GEMM, the union of their windows, and a cost model.

Window starts are monotone in the query position (:func:`~ignn_lab.graph.window.window_starts`), so the
windows of a tile of queries together cover one rectangle of the son grid, the tile's *union*. Tiles along an
axis all get the same union size (shifted back to stay inside the grid), so their unions can be read as one
strided view. :func:`choose_tile` picks the tile shape from a measured cost model.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

from ignn_lab.graph.window import Centering, window_starts

__all__ = ["CHUNK_ELEMS", "TILE_SIDES", "AxisTiles", "TileChunk", "choose_tile", "tile_cost",
           "tile_starts"]

#: Cost model of a windowed search (seconds on one CPU core), fitted by least squares to 22 measured runs
#: (Urban100-size ×2 and ×4, 27-d and 576-d, tiles 4×4 … 96×128; within 10 % of every measurement):
#: ``tiles × (Tq·Nc·(2(D+2)·GEMM_S_PER_FLOP + BOUND_S_PER_ELEM) + Nc·D·UNION_S_PER_ELEM + TILE_S)``,
#: Tq queries per tile, Nc candidates in the union of their windows. Small tiles waste less GEMM work on the
#: union; large tiles pay the per-tile costs less often.
GEMM_S_PER_FLOP = 1.74e-11
BOUND_S_PER_ELEM = 5.8e-9  # masking and selecting from the Tq×Nc bound matrix
UNION_S_PER_ELEM = 8.2e-10  # centring the union and its norms
TILE_S = 2.1e-5  # fixed work per tile
TILE_SIDES = (4, 6, 8, 12, 16, 24, 32, 48, 64)
#: Elements (tiles × union × D, plus their distance blocks) processed per step of a windowed search.
CHUNK_ELEMS = 1 << 21


def _union_extent(starts: list[int], a: int, size: int, side: int) -> int:
    return starts[a + size - 1] + side - starts[a]


def tile_cost(query_grid: tuple[int, int], son_grid: tuple[int, int], side: int, graph_scale: int, dim: int,
              tile: tuple[int, int], *, centering: Centering = "corrected") -> float:
    """Modelled CPU seconds of a windowed search with query tiles of ``tile`` (rows, cols), per batch item."""
    axes = []
    for m, n, t in zip(query_grid, son_grid, tile):
        st = window_starts(m, n, side, graph_scale, centering).tolist()
        t = min(t, m)
        starts = tile_starts(m, t)
        axes.append((t, len(starts), max(_union_extent(st, a, t, side) for a in starts)))
    (th, n_r, ur), (tw, n_c, uc) = axes
    tq, nc = th * tw, ur * uc
    per_tile = tq * nc * (2 * (dim + 2) * GEMM_S_PER_FLOP + BOUND_S_PER_ELEM) + nc * dim * UNION_S_PER_ELEM
    return n_r * n_c * (per_tile + TILE_S)


@lru_cache(maxsize=256)  # a pure function of its (hashable) arguments; models call it on every forward
def choose_tile(query_grid: tuple[int, int], son_grid: tuple[int, int], side: int, graph_scale: int, dim: int,
                *, centering: Centering = "corrected", workers: int = 1) -> tuple[int, int]:
    """The tile shape (rows, cols) with the lowest :func:`tile_cost` among ``TILE_SIDES`` and the grid.

    Tiles are at most ``⌈m1 / workers⌉`` rows high, so that every worker thread gets a band of tiles.
    """
    max_rows = -(-query_grid[0] // max(1, workers))
    rows = sorted({min(t, max_rows) for t in TILE_SIDES + (query_grid[0],)})
    cols = sorted({min(t, query_grid[1]) for t in TILE_SIDES + (query_grid[1],)})
    options = [(th, tw) for th in rows for tw in cols if th * tw * dim <= CHUNK_ELEMS]  # a tile fits a chunk
    return min(options or [(1, 1)], key=lambda t: tile_cost(query_grid, son_grid, side, graph_scale, dim, t,
                                                             centering=centering))


def tile_starts(n: int, size: int) -> list[int]:
    """Starts of tiles of ``size`` covering ``0..n-1``; the last one is shifted back to fit (may overlap)."""
    starts = list(range(0, n - size + 1, size))
    if starts[-1] + size < n:
        starts.append(n - size)
    return starts


class AxisTiles:
    """Tiling of one grid axis: query-tile starts, a fixed union size, union starts and the in-window mask
    (``inside``, tiles×tile×union bool, and ``penalty``, the same as 0 / +inf of ``dtype``).

    Args:
        win_starts: the window start of every query row (or column), from
            :func:`~ignn_lab.graph.window.window_starts`.
        n_son: son-grid length. tile: tile length. side: window side. dtype: of ``penalty``.
    """

    def __init__(self, win_starts: Tensor, n_son: int, tile: int, side: int, dtype: torch.dtype = torch.float32):
        self.size = tile
        self.starts = tile_starts(win_starts.numel(), tile)
        st = win_starts.tolist()
        self.union = max(_union_extent(st, a, tile, side) for a in self.starts)  # ≤ n_son: windows fit
        self.union_starts = torch.tensor([min(st[a], n_son - self.union) for a in self.starts],
                                         device=win_starts.device)
        off = torch.arange(tile, device=win_starts.device)
        first = torch.tensor(self.starts, device=win_starts.device)
        rel = win_starts[first[:, None] + off] - self.union_starts[:, None]
        self.rel = rel.contiguous()  # tiles×tile: window start of each tile position inside its union
        pos = torch.arange(self.union, device=win_starts.device)
        self.inside = (pos >= rel[..., None]) & (pos < rel[..., None] + side)  # tiles×tile×union
        # 0 inside the window, +inf outside: added to a distance bound, it masks the candidate
        self.penalty = torch.zeros(self.inside.shape, dtype=dtype, device=win_starts.device).masked_fill_(
            ~self.inside, float("inf"))
        self.query_starts = first


class TileChunk:
    """Consecutive query tiles processed together, numbered ``band·(B·n_ct) + b·n_ct + column tile``, and
    how to read their unions: runs of tiles of one band and batch item whose union starts are equally spaced
    along the columns (one strided view of the son grid each).

    Args:
        tiles: the tile numbers. n_ct: column tiles. batch: B. union_starts: column union start per column tile.
    """

    def __init__(self, tiles: range, n_ct: int, batch: int, union_starts: list[int]):
        per_band = batch * n_ct
        self.first, self.size = tiles.start, len(tiles)
        t = torch.arange(tiles.start, tiles.stop)
        self.band, self.batch, self.col_tile = t // per_band, t % per_band // n_ct, t % n_ct
        self.bands = range(tiles.start // per_band, (tiles.stop - 1) // per_band + 1)
        self.runs: list[tuple[int, int, int, int, int, int]] = []  # (pos, length, band, batch, start, step)
        for pos, tt in enumerate(tiles):
            band, rest = divmod(tt, per_band)
            b, c = divmod(rest, n_ct)
            if self.runs:
                p0, n, band0, b0, s0, st = self.runs[-1]
                gap = union_starts[c] - union_starts[c - 1] if c else -1
                if band0 == band and b0 == b and c and (n == 1 or gap == st):
                    self.runs[-1] = (p0, n + 1, band0, b0, s0, gap)
                    continue
            self.runs.append((pos, 1, band, b, union_starts[c], 0))
