"""The match figure of one query patch: its cross-scale neighbours and what GraphAgg* makes of them.

Top row: the LR image with the query box (red) and, dashed, the LR regions its HR patches come from; the son
with the k neighbour boxes and the search window (dashed white), each neighbour joined to the query by an edge
coloured by its distance (colorbar); the recurrence map with the query box. Below, one column per patch: the
query's and each neighbour's surroundings (zoomed, same boxes); the ground-truth HR patch and the k raw HR
patches; the aggregate and the k AdaPN-normalised HR patches.

Every image is shown with ``imshow``'s pixel-centred extent, so a box (top, left, h, w) is drawn as the
rectangle from (left - 0.5, top - 0.5) of size w×h: it encloses exactly the pixels of the patch it names. The
returned :class:`MatchFigure` lists every drawn box with its panel and the box it names, so tests can check
this. Headless: uses ``matplotlib.figure.Figure`` (Agg), never pyplot.

The dashed HR-source boxes lie in the LR image, but HR patches are cut from the LR cropped to a multiple of s
(spec §9.10): pixels of a box beyond ``s·⌊H/s⌋`` (or ``s·⌊W/s⌋``) are zeros in the HR patch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ignn_lab.graph.aggregate import GraphAggDetails

__all__ = ["DrawnBox", "MatchFigure", "match_figure", "box_pixels", "to_numpy_patch", "distance_norm",
           "distance_colors", "recurrence_range", "recurrence_rgb", "context_box"]

QUERY_COLOR = "red"
WINDOW_COLOR = "white"
DIST_CMAP = "viridis"
RECURRENCE_CMAP = "magma"


@dataclass
class DrawnBox:
    """One rectangle of the figure.

    ``panel``: the panel key; ``box``: (top, left, height, width) it names, in the full image's pixels;
    ``names``: ``query``, ``neighbour``, ``hr-source`` or ``window``; ``rank``: 0-based, -1 for query/window.
    """

    panel: str
    box: tuple[int, int, int, int]
    names: str
    rank: int
    rect: Any


@dataclass
class MatchFigure:
    """A rendered match figure: the Figure, its axes and images by panel key, the boxes and the edges."""

    figure: Any
    axes: dict[str, Any] = field(default_factory=dict)
    images: dict[str, Any] = field(default_factory=dict)
    boxes: list[DrawnBox] = field(default_factory=list)
    edges: list[tuple[int, Any]] = field(default_factory=list)


def distance_norm(distance: Tensor | np.ndarray):
    """The colour normalisation of one query's neighbour distances (k values): their min to their max."""
    from matplotlib.colors import Normalize

    d = np.asarray(torch.as_tensor(distance).detach().cpu().double())
    return Normalize(vmin=float(d.min()), vmax=max(float(d.max()), float(d.min()) + 1e-12))


def distance_colors(distance: Tensor | np.ndarray) -> list[str]:
    """One ``#rrggbb`` colour per neighbour distance, as :func:`match_figure` draws its boxes and edges."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    norm, cmap = distance_norm(distance), colormaps[DIST_CMAP]
    return [to_hex(cmap(norm(float(v)))) for v in np.asarray(torch.as_tensor(distance).double()).ravel()]


def recurrence_range(recurrence: np.ndarray) -> tuple[float, float]:
    """(lo, hi) of the recurrence map's log colour scale: the 1st percentile of the positive values (1e-6 when
    there are none) and the maximum (at least 10·lo)."""
    pos = recurrence[recurrence > 0]
    lo = float(np.percentile(pos, 1)) if pos.size else 1e-6
    return lo, max(float(recurrence.max()), lo * 10)


def recurrence_rgb(recurrence: Tensor | np.ndarray) -> np.ndarray:
    """H×W recurrence map → H×W×3 uint8, coloured as :func:`match_figure` shows it (log scale, magma)."""
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm

    rec = np.asarray(torch.as_tensor(recurrence).detach().cpu().double()).reshape(recurrence.shape[-2:])
    lo, hi = recurrence_range(rec)
    rgba = colormaps[RECURRENCE_CMAP](LogNorm(vmin=lo, vmax=hi)(np.maximum(rec, lo)))
    return (np.asarray(rgba)[..., :3] * 255 + 0.5).astype(np.uint8)


def _hwc(x: Tensor | np.ndarray) -> np.ndarray:
    """C×H×W tensor in [0, 1] → H×W×3 or H×W float array for imshow (clipped)."""
    a = x.detach().cpu().double().numpy() if isinstance(x, Tensor) else np.asarray(x, dtype=np.float64)
    a = a[0] if a.shape[0] == 1 else np.moveaxis(a, 0, -1)
    return np.clip(a, 0.0, 1.0)


def _show(mf: MatchFigure, key: str, ax, img: np.ndarray, origin: tuple[int, int] = (0, 0), **kw) -> None:
    """imshow with full-image pixel (r, c) centred at data (c, r); ``origin``: the crop's top-left pixel."""
    r0, c0 = origin
    h, w = img.shape[:2]
    extent = (c0 - 0.5, c0 + w - 0.5, r0 + h - 0.5, r0 - 0.5)
    kw.setdefault("cmap", "gray" if img.ndim == 2 else None)
    kw.setdefault("vmin", 0.0)
    kw.setdefault("vmax", 1.0)
    mf.images[key] = ax.imshow(img, extent=extent, interpolation="nearest", **kw)
    mf.axes[key] = ax
    ax.set_xticks([])
    ax.set_yticks([])


def _rect(mf: MatchFigure, key: str, box: Tensor | tuple, names: str, rank: int, color, **kw) -> None:
    from matplotlib.patches import Rectangle

    top, left, h, w = (int(v) for v in box)
    rect = Rectangle((left - 0.5, top - 0.5), w, h, fill=False, edgecolor=color, **kw)
    mf.axes[key].add_patch(rect)
    mf.boxes.append(DrawnBox(key, (top, left, h, w), names, rank, rect))


def box_pixels(image_artist, rect) -> tuple[int, int, int, int]:
    """The (row, col, height, width) array slice a rectangle encloses in an ``imshow`` image (its extent).

    Raises ValueError when the rectangle's edges do not lie on pixel boundaries.
    """
    left, _, bottom, top = image_artist.get_extent()
    x, y = rect.get_x() - left, rect.get_y() - top
    vals = (y, x, rect.get_height(), rect.get_width())
    if any(abs(v - round(v)) > 1e-9 for v in vals):
        raise ValueError(f"rectangle {vals} does not lie on the pixel grid of the image")
    return tuple(int(round(v)) for v in vals)  # type: ignore[return-value]


def context_box(box: Tensor, size: tuple[int, int], margin: int) -> tuple[int, int, int, int]:
    """(r0, c0, r1, c1) of the crop of ``box`` (top, left, h, w) and ``margin`` pixels around it, inside an
    image of ``size`` (H, W)."""
    top, left, h, w = (int(v) for v in box)
    r0, c0 = max(0, top - margin), max(0, left - margin)
    r1, c1 = min(size[0], top + h + margin), min(size[1], left + w + margin)
    return r0, c0, r1, c1


def _centre(box: Tensor) -> tuple[float, float]:
    top, left, h, w = (float(v) for v in box)
    return left + (w - 1) / 2, top + (h - 1) / 2  # data (x, y)


def _top_row(mf: MatchFigure, axes, lr: np.ndarray, son: np.ndarray, det: GraphAggDetails, q: int,
             recurrence: np.ndarray | None, norm, cmap) -> None:
    from matplotlib.patches import ConnectionPatch

    _show(mf, "lr", axes[0], lr)
    _show(mf, "son", axes[1], son)
    k = det.neighbour_index.shape[1]
    for r in range(k):
        color = cmap(norm(float(det.distance[q, r])))
        if det.cross_scale:  # same-scale HR patches come from the bicubic ×s image, not from this panel
            _rect(mf, "lr", det.hr_boxes[q, r], "hr-source", r, color, linewidth=0.8, linestyle="--")
        _rect(mf, "son", det.son_boxes[q, r], "neighbour", r, color, linewidth=1.4)
    _rect(mf, "lr", det.query_boxes[q], "query", -1, QUERY_COLOR, linewidth=1.4)
    if det.window_boxes is not None:
        _rect(mf, "son", det.window_boxes[q], "window", -1, WINDOW_COLOR, linewidth=0.8, linestyle="--")
    for r in reversed(range(k)):  # nearest drawn last, on top
        con = ConnectionPatch(xyA=_centre(det.query_boxes[q]), coordsA=mf.axes["lr"].transData,
                              xyB=_centre(det.son_boxes[q, r]), coordsB=mf.axes["son"].transData,
                              color=cmap(norm(float(det.distance[q, r]))), linewidth=1.0, alpha=0.9)
        con.set_in_layout(False)
        mf.figure.add_artist(con)
        mf.edges.append((r, con))
    if recurrence is not None:
        from matplotlib.colors import LogNorm

        lo, hi = recurrence_range(recurrence)
        _show(mf, "recurrence", axes[2], np.maximum(recurrence, lo), cmap=RECURRENCE_CMAP, vmin=None,
              vmax=None, norm=LogNorm(vmin=lo, vmax=hi))
        _rect(mf, "recurrence", det.query_boxes[q], "query", -1, "cyan", linewidth=1.4)
        mf.figure.colorbar(mf.images["recurrence"], ax=axes[2], shrink=0.8, label="best-match distance (log)")
    else:
        axes[2].set_axis_off()


def _patch_rows(mf: MatchFigure, grid, lr: np.ndarray, son: np.ndarray, det: GraphAggDetails, q: int,
                hr_patch: Tensor | None, norm, cmap, margin: int) -> None:
    k = det.neighbour_index.shape[1]
    r0, c0, r1, c1 = context_box(det.query_boxes[q], lr.shape[:2], margin)
    _show(mf, "query_context", grid[0, 0], lr[r0:r1, c0:c1], origin=(r0, c0))
    _rect(mf, "query_context", det.query_boxes[q], "query", -1, QUERY_COLOR, linewidth=1.5)
    mf.axes["query_context"].set_title("query (LR)", fontsize=8, color=QUERY_COLOR)
    if hr_patch is not None:
        _show(mf, "ground_truth", grid[1, 0], _hwc(hr_patch))
        mf.axes["ground_truth"].set_title("ground-truth HR", fontsize=8)
    else:
        grid[1, 0].set_axis_off()
    _show(mf, "aggregate", grid[2, 0], _hwc(det.aggregate[q]))
    mf.axes["aggregate"].set_title("aggregate", fontsize=8)
    for r in range(k):
        color = cmap(norm(float(det.distance[q, r])))
        key = f"son_context_{r}"
        r0, c0, r1, c1 = context_box(det.son_boxes[q, r], son.shape[:2], margin)
        _show(mf, key, grid[0, r + 1], son[r0:r1, c0:c1], origin=(r0, c0))
        _rect(mf, key, det.son_boxes[q, r], "neighbour", r, color, linewidth=1.5)
        mf.axes[key].set_title(f"#{r + 1} son, d={float(det.distance[q, r]):.3g}", fontsize=8)
        _show(mf, f"hr_raw_{r}", grid[1, r + 1], _hwc(det.hr_patches[q, r]))
        mf.axes[f"hr_raw_{r}"].set_title(f"#{r + 1} HR patch", fontsize=8)
        _show(mf, f"hr_adapn_{r}", grid[2, r + 1], _hwc(det.hr_patches_adapn[q, r]))
        mf.axes[f"hr_adapn_{r}"].set_title(f"#{r + 1} AdaPN, w={float(det.weights[q, r]):.2f}", fontsize=8)


def match_figure(lr: Tensor, son: Tensor, details: GraphAggDetails, *, query: int = 0,
                 hr_patch: Tensor | None = None, recurrence: Tensor | None = None, title: str = "",
                 context: int = 8, dpi: int = 110) -> MatchFigure:
    """Draw the match figure of one query.

    Args:
        lr: C×H×W float in [0, 1], the LR image (C = 1 or 3).
        son: C×h×w float in [0, 1], the searched image (``MatchGraph.son``).
        details: from :func:`~ignn_lab.graph.aggregate.graphagg_details` for this image.
        query: which row of ``details`` to draw.
        hr_patch: C×P×P ground-truth HR patch under the query (``details.output_boxes``), or None.
        recurrence: H×W (or 1×H×W) recurrence map, or None.
        title: the figure's suptitle.
        context: margin in pixels of the zoomed surroundings panels.
        dpi: figure resolution.

    Returns:
        A :class:`MatchFigure` (``figure`` is a matplotlib Figure; save it with ``figure.savefig``).
    """
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.figure import Figure

    if lr.ndim != 3 or son.ndim != 3 or lr.shape[0] != son.shape[0]:
        raise ValueError(f"lr and son must be C×H×W with the same C, got {tuple(lr.shape)} and "
                         f"{tuple(son.shape)}")
    n_q = details.query_index.numel()
    if not 0 <= query < n_q:
        raise ValueError(f"query must index one of the {n_q} queries in details, got {query}")
    k = details.neighbour_index.shape[1]
    lr_a, son_a = _hwc(lr), _hwc(son)
    rec = None if recurrence is None else recurrence.detach().cpu().double().numpy().reshape(lr.shape[-2:])
    cmap = colormaps[DIST_CMAP]
    norm = distance_norm(details.distance[query])
    cols = k + 1
    fig = Figure(figsize=(max(12.0, 1.9 * cols), 9.6), dpi=dpi, layout="constrained")
    mf = MatchFigure(fig)
    outer = fig.add_gridspec(2, 1, height_ratios=[2.1, 2.4])
    top = outer[0].subgridspec(1, 3, width_ratios=[1.0, 1.0, 1.0])
    axes = [fig.add_subplot(top[0, i]) for i in range(3)]
    bottom = outer[1].subgridspec(3, cols)
    grid = np.array([[fig.add_subplot(bottom[i, j]) for j in range(cols)] for i in range(3)])
    _top_row(mf, axes, lr_a, son_a, details, query, rec, norm, cmap)
    _patch_rows(mf, grid, lr_a, son_a, details, query, hr_patch, norm, cmap, context)
    top_, left, _, _ = (int(v) for v in details.query_boxes[query])
    source = ("dashed: where the HR patches come from" if details.cross_scale
              else f"HR patches: bicubic ×{details.scale} of the neighbours")
    axes[0].set_title(f"LR {lr.shape[-2]}×{lr.shape[-1]}, query ({top_}, {left})\n{source}", fontsize=9)
    win = "global search" if details.window_boxes is None else "dashed: search window"
    what = "son" if lr.shape[-2:] != son.shape[-2:] else "LR (same scale)"
    axes[1].set_title(f"{what} {son.shape[-2]}×{son.shape[-1]}, {k} nearest\n{win}", fontsize=9)
    axes[2].set_title("recurrence map\n(distance to the best match)", fontsize=9)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes[1], shrink=0.8, label="squared L2 distance")
    if title:
        fig.suptitle(title, fontsize=10)
    return mf


def to_numpy_patch(x: Tensor) -> np.ndarray:
    """C×h×w tensor → the array :func:`match_figure` displays for it (H×W×3 or H×W, clipped to [0, 1])."""
    return _hwc(torch.as_tensor(x))
