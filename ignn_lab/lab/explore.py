"""``explore``: the cross-scale matches of one query patch of an image, as a figure and a JSON record.

The image is treated as HR: it is mod-cropped and downscaled by ``scale`` with MATLAB's bicubic (the
evaluation protocol's LR); the son is the LR downscaled by the graph scale (= ``scale``, as in GraphAgg*).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ignn_lab.data.convert import to_chw
from ignn_lab.data.datasets import list_images, load_image
from ignn_lab.data.degrade import modcrop
from ignn_lab.data.imresize import imresize
from ignn_lab.data.io import atomic_write_bytes, check_image_array, json_bytes, read_image
from ignn_lab.data.outputs import OutputSet, output_set
from ignn_lab.graph.aggregate import (
    STRIDE,
    GraphAggDetails,
    MatchGraph,
    crop_box,
    graphagg_details,
    recurrence_from_graph,
    search_graph,
)
from ignn_lab.graph.patches import im2patch
from ignn_lab.viz import save_figure

__all__ = ["explore", "load_hr", "most_recurrent_query", "snap_query", "write_match_figure",
           "check_figure_path", "MIN_PATCH_STD"]

#: Patches whose per-channel standard deviation (mean over channels, [0, 1] units) is below this are "flat".
MIN_PATCH_STD = 8 / 255


def load_hr(image: str | os.PathLike | np.ndarray, data_root: str | os.PathLike | None = None
            ) -> tuple[np.ndarray, str]:
    """The image as uint8 H×W×3 or H×W, and a label.

    ``image``: a file path, ``SET/NAME`` (e.g. ``skimage/astronaut``, ``Urban100/img_004``) or a uint8 array.
    """
    if isinstance(image, np.ndarray):
        return check_image_array(image), "array"
    path = Path(image).expanduser()
    if path.is_file():
        return read_image(path), str(path)
    text = str(image)
    if "/" not in text:
        raise ValueError(f"image {text!r} is neither a file nor SET/NAME "
                         "(e.g. skimage/astronaut, Urban100/img_004)")
    set_name, name = text.rsplit("/", 1)
    records = list_images(set_name, data_root)
    for rec in records:
        if name in (rec.name, rec.path.name):
            return load_image(rec), f"{rec.set}/{rec.name}"
    names = ", ".join(r.name for r in records[:12]) + (" …" if len(records) > 12 else "")
    raise ValueError(f"no image {name!r} in set {set_name!r}; it has: {names}")


def snap_query(query: tuple[int, int], lr_size: tuple[int, int], grid: tuple[int, int]) -> int:
    """Flat query-grid index of the patch whose top-left corner is (row, col) in LR pixels.

    The corner is snapped down to the stride-2 patch grid, and into it (the last row/column of patches).
    """
    row, col = (int(v) for v in query)
    H, W = lr_size
    if not (0 <= row < H and 0 <= col < W):
        raise ValueError(f"query ({row}, {col}) is outside the {H}×{W} LR image "
                         f"(row in [0, {H}), col in [0, {W}))")
    i, j = min(row // STRIDE, grid[0] - 1), min(col // STRIDE, grid[1] - 1)
    return i * grid[1] + j


def most_recurrent_query(mg: MatchGraph, *, min_std: float = MIN_PATCH_STD, textured: float = 0.9,
                         batch_index: int = 0) -> int:
    """The query patch with the lowest best-match distance among the textured patches that hold no padding.

    Textured: the patch's per-channel standard deviation (averaged over channels, [0, 1] units) is at least
    ``min_std`` and at least the ``textured`` quantile of all patches' (so flat and faint patches, whose
    distances are small only because there is little to match, are excluded). Ties go to the lower index.
    """
    p = mg.patch_size
    q, (m1, m2), _ = im2patch(mg.lr[batch_index: batch_index + 1], p, STRIDE)
    std = q[0].view(m1 * m2, mg.lr.shape[1], p * p).double().std(-1).mean(-1).view(m1, m2).cpu()
    H, W = mg.lr.shape[-2:]
    inside = torch.zeros(m1, m2, dtype=torch.bool)
    inside[: (H - p) // STRIDE + 1, : (W - p) // STRIDE + 1] = True
    level = float(torch.quantile(std[inside], textured))
    ok = inside & (std >= max(min_std, level))
    if not ok.any():  # a flat image: fall back to the textured quantile alone
        ok = inside & (std >= level)
    d = mg.distance[batch_index, :, 0].double().cpu().view(m1, m2)
    d = torch.where(ok, d, torch.full_like(d, float("inf")))
    return int(torch.argmin(d.view(-1)))  # the first minimum: ties go to the lower index


def check_figure_path(out: str | os.PathLike) -> Path:
    """``out`` as a Path; ValueError unless it ends in ``.png``, ``.pdf`` or ``.svg``."""
    out = Path(out).expanduser()
    if out.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise ValueError(f"out must end in .png, .pdf or .svg, got {str(out)!r}")
    return out


def _box(t: Tensor) -> list[int]:
    return [int(v) for v in t]


def _protocol_lr(hr_np: np.ndarray, scale: int) -> tuple[Tensor, Tensor]:
    """uint8 H×W(×3) → (mod-cropped HR C×H×W uint8, LR 1×C×h×w float32 in [0, 1] = MATLAB bicubic of it)."""
    hr = to_chw(modcrop(hr_np, scale))
    return hr, imresize(hr, 1 / scale).float()[None] / 255


def _record(label: str, hr: Tensor, mg: MatchGraph, det: GraphAggDetails, gt: Tensor, query, how: str,
            settings: dict) -> dict:
    qi = int(det.query_index[0])
    qbox = _box(det.query_boxes[0])
    neighbours = [{"rank": r + 1, "son_index": int(det.neighbour_index[0, r]),
                   "son_box": _box(det.son_boxes[0, r]), "hr_source_box": _box(det.hr_boxes[0, r]),
                   "distance": float(det.distance[0, r]), "weight": float(det.weights[0, r])}
                  for r in range(mg.k)]
    err = float((det.aggregate[0] - gt).pow(2).mean())
    requested = None if query is None else [int(v) for v in query]
    return {
        "image": label, "hr_size": list(hr.shape[-2:]), "lr_size": list(mg.lr.shape[-2:]),
        "son_size": list(mg.son.shape[-2:]), **settings, "graph_scale": mg.scale,
        "effective_window": mg.window, "backend": mg.backend,
        "query": {"requested": requested, "chosen_by": how, "row": qbox[0], "col": qbox[1], "lr_box": qbox,
                  "grid": [qi // mg.query_grid[1], qi % mg.query_grid[1]], "index": qi,
                  "snapped": requested is not None and requested != qbox[:2],
                  "hr_box": _box(det.output_boxes[0])},
        "neighbours": neighbours,
        "aggregate_psnr_vs_ground_truth": 10 * float(np.log10(1 / err)) if err > 0 else None,
        "box_convention": ("(top, left, height, width), 0-based, in pixels of the image named (son_box: "
                           "son; lr_box, hr_source_box: LR; hr_box: HR); boxes may reach past the "
                           "bottom/right edge by the released zero padding"),
    }


def explore(image: str | os.PathLike | np.ndarray, *, scale: int = 2, query: tuple[int, int] | None = None,
            k: int = 5, window: int | None = 30, embedding: str = "pixel", patch_size: int = 3,
            out: str | os.PathLike = "fig.png", data_root: str | os.PathLike | None = None) -> dict:
    """Figure and JSON of one query patch's cross-scale neighbours, HR patches and aggregate.

    Args:
        image: a file, ``SET/NAME`` (``skimage/astronaut``, ``Urban100/img_004``) or a uint8 H×W(×3) array;
            treated as HR.
        scale: SR scale s >= 2 (LR = MATLAB bicubic of the uint8 HR by 1/s; the graph scale is s too).
        query: (row, col) of the query patch's top-left corner in LR pixels, snapped down to the stride-2
            patch grid (the result says where it landed); None picks :func:`most_recurrent_query`.
        k, window, embedding, patch_size: as :func:`ignn_lab.graph.aggregate.search_graph`.
        out: the figure's path (``.png``, ``.pdf`` or ``.svg``); the JSON goes beside it (same stem). Both are
            written together, after every check; neither may be the input image.
        data_root: where ``SET`` folders live (default: :func:`ignn_lab.data.datasets.resolve_data_root`).

    Returns:
        A dict, also written as JSON: ``image``, sizes, settings, ``query`` (requested, snapped LR box, grid
        position, how it was chosen, HR box), ``neighbours`` (rank, son box, HR-source box in LR pixels,
        distance, weight), ``figure`` and ``json`` paths.
    """
    out = check_figure_path(out)
    if query is not None and (len(query) != 2 or not all(isinstance(v, (int, np.integer)) for v in query)):
        raise TypeError(f"query must be (row, col) ints in LR pixels or None, got {query!r}")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 2:
        raise ValueError(f"scale must be an int ≥ 2, got {scale!r}")
    hr_np, label = load_hr(image, data_root)
    _check_size(hr_np, label, scale, patch_size)
    src = Path(image).expanduser() if isinstance(image, (str, os.PathLike)) and Path(image).is_file() else None
    members = (out.name, out.with_suffix(".json").name)
    with OutputSet(out.parent, members, inputs=[src] if src else [], what="--out path") as outs:
        hr, lr = _protocol_lr(hr_np, scale)
        mg = search_graph(lr, scale, k=k, window=window, embedding=embedding, patch_size=patch_size)
        if query is None:
            qi, how = most_recurrent_query(mg), "most recurrent textured patch"
        else:
            qi, how = snap_query(query, tuple(lr.shape[-2:]), mg.query_grid), "requested"
        det = graphagg_details(mg, [qi])
        gt = crop_box(hr.float() / 255, det.output_boxes[0])
        settings = {"scale": scale, "k": k, "window": window, "embedding": embedding, "patch_size": patch_size}
        info = _record(label, hr, mg, det, gt, query, how, settings)
        return write_match_figure(info, mg, det, gt, recurrence_from_graph(mg)[0, 0], out, outs=outs)


def write_match_figure(info: dict, mg: MatchGraph, det: GraphAggDetails, gt: Tensor, recurrence: Tensor,
                       out: str | os.PathLike, *, outs: OutputSet | None = None) -> dict:
    """Draw :func:`~ignn_lab.viz.matches.match_figure` for the record ``info`` and write it with its JSON.

    Args:
        info: the record of the query (:func:`explore`'s dict without ``figure`` and ``json``).
        mg, det: the graph and the query's details (one row). gt: C×P×P ground-truth HR patch.
        recurrence: H×W recurrence map of ``mg``.
        out: the figure's path (``.png``, ``.pdf`` or ``.svg``); the JSON goes beside it (same stem).
        outs: an open output set holding both files (default: one of their own; both are replaced together).

    Returns:
        ``info`` with ``figure`` and ``json`` (the paths written).
    """
    from ignn_lab.viz.matches import match_figure

    out = check_figure_path(out)
    members = (out.name, out.with_suffix(".json").name)
    q = info["query"]
    title = (f"{info['image']}: ×{info['scale']}, query ({q['row']}, {q['col']}) [{q['chosen_by']}], "
             f"k={info['k']}, window={info['window']}, embedding={info['embedding']}, "
             f"patch {info['patch_size']}×{info['patch_size']}")
    with output_set(outs if outs is not None else out.parent, members, what="--out path") as s:
        mf = match_figure(mg.lr[0], mg.son[0], det, hr_patch=gt, recurrence=recurrence, title=title)
        info = dict(info)
        save_figure(mf.figure, s.path(members[0]), dpi=110)
        info["figure"], info["json"] = str(s.final(members[0])), str(s.final(members[1]))
        atomic_write_bytes(s.path(members[1]), json_bytes(info))
    return info


def _check_size(hr: np.ndarray, label: str, scale: int, patch_size: int) -> None:
    """The LR (HR/s) and its son (LR/s) must each hold one patch; say so with the image's name."""
    h, w = hr.shape[:2]
    need = patch_size * scale * scale
    if min(h, w) < need:
        raise ValueError(f"{label}: {w}×{h} pixels is too small to explore at ×{scale} with {patch_size}×"
                         f"{patch_size} patches: the son (HR/{scale * scale}) must hold one patch, so images of at "
                         f"least {need}×{need}")
