"""``Explorer``: the state behind the interactive match explorer, usable (and tested) without a browser.

An :class:`Explorer` holds one image, treated as HR as in :func:`ignn_lab.lab.explore.explore` (mod-crop, LR =
MATLAB bicubic of the uint8 HR by 1/s), and builds what the explorer shows in three stages, each rebuilt only
when a setting it depends on changes:

- **image** (``image``, ``scale``, ``data_root``): HR, LR, the bicubic ×s of the LR;
- **graph** (+ ``k``, ``window``, ``patch_size``, ``embedding``): the image-space graph of GraphAgg*
  (:func:`~ignn_lab.graph.aggregate.search_graph`: son = LR/s, kNN of every query patch) and its recurrence
  map; the last few graphs are kept, so going back to a setting costs nothing;
- **model** (+ ``model``): one forward of the network on the LR that keeps its graph layer's graph and rank
  weights, and the SR image.

:meth:`Explorer.select` then answers for any query patch from what was built, without searching again.

Two graphs, not one. The **image-space graph** is the one the settings describe (GraphAgg*'s: son = LR/s,
patches matched in ``embedding``). A trained IGNN has **its own graph**, built inside the network from its own
configuration (IGNN-lite: pixel embedding, k = 3, window 8; son = LR/g with g = 2 at ×2 and ×4, 3 at ×3). Its
neighbours aggregate the network's features, not pixels, and each is weighted by the learned edge weight nets
(``ecn``, a softmax over the k ranks, spec §5). :meth:`Explorer.select` reports the model's neighbours for the
same query patch separately, under ``model``.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ignn_lab.data.datasets import BENCHMARK_SETS, list_images
from ignn_lab.data.imresize import imresize
from ignn_lab.graph.aggregate import (
    MATCH_EMBEDDINGS,
    STRIDE,
    MatchGraph,
    crop_box,
    graphagg_details,
    recurrence_from_graph,
    search_graph,
)
from ignn_lab.lab.explore import (
    _protocol_lr,
    _record,
    check_figure_path,
    load_hr,
    most_recurrent_query,
    snap_query,
    write_match_figure,
)

__all__ = ["Explorer", "SETTINGS", "image_choices", "model_choices"]

#: The settings :meth:`Explorer.update` accepts, with their defaults.
SETTINGS: dict[str, Any] = {"image": "skimage/astronaut", "scale": 2, "k": 5, "window": 30, "patch_size": 3,
                            "embedding": "pixel", "model": None, "data_root": None}
_IMAGE_KEYS = ("image", "scale", "data_root")
_GRAPH_KEYS = ("k", "window", "patch_size", "embedding")
#: How many built graphs (one per setting) are kept.
GRAPH_CACHE = 6
#: LR pixels of context around the query in the SR / bicubic / HR crops.
CROP_MARGIN = 8

Progress = Callable[[str, float], None]


@dataclass
class _ImageState:
    label: str
    hr: Tensor  # C×H×W uint8, mod-cropped
    lr: Tensor  # 1×C×h×w float32 in [0, 1] (uint8 values / 255)
    generation: int
    bicubic: Tensor | None = None  # C×H×W float in [0, 1], made on first use


@dataclass
class _GraphState:
    mg: MatchGraph
    recurrence: Tensor  # h×w
    seconds: float


@dataclass
class _ModelState:
    name: str
    module: torch.nn.Module
    sr: Tensor  # C×H×W float in [0, 1] (clamped; grey images: the channel mean)
    graph: Any  # CrossScaleGraph of the model's graph layer, or None (no graph layer)
    weights: Tensor | None  # n×k×h×w softmax rank weights (LR path first, then HR), or None
    son: Tensor | None  # 3×h'×w', the son the model searched
    seconds: float


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def _check_settings(s: dict) -> dict:
    unknown = sorted(set(s) - set(SETTINGS))
    if unknown:
        raise ValueError(f"unknown explorer setting(s) {unknown}; accepted: {', '.join(SETTINGS)}")
    s = dict(s)
    s["scale"] = _check_int("scale", s["scale"], 2)
    s["k"] = _check_int("k", s["k"], 1)
    s["patch_size"] = _check_int("patch_size", s["patch_size"], 2)
    if s["window"] is not None:
        s["window"] = _check_int("window", s["window"], 1)
    if s["embedding"] not in MATCH_EMBEDDINGS:
        raise ValueError(f"embedding must be one of {', '.join(MATCH_EMBEDDINGS)}, got {s['embedding']!r}")
    if s["model"] is not None and not isinstance(s["model"], (str, os.PathLike, torch.nn.Module)):
        raise TypeError(f"model must be None, a shipped checkpoint name, a checkpoint path, a registry name "
                        f"or an nn.Module, got {type(s['model']).__name__}")
    if s["model"] == "":
        s["model"] = None
    return s


def _same(a: Any, b: Any) -> bool:
    """Setting equality; arrays and modules by identity (a new array is a new image)."""
    if isinstance(a, (np.ndarray, torch.nn.Module)) or isinstance(b, (np.ndarray, torch.nn.Module)):
        return a is b
    return a == b


def image_choices(data_root: str | os.PathLike | None = None) -> list[str]:
    """``SET/NAME`` of the embedded ``skimage`` images and of the benchmark sets found under ``data_root``."""
    out = [f"{r.set}/{r.name}" for r in list_images("skimage")]
    for name in BENCHMARK_SETS:
        try:
            out += [f"{r.set}/{r.name}" for r in list_images(name, data_root)]
        except (FileNotFoundError, ValueError):  # no data root or no such set here: offer what exists
            continue
    return out


def model_choices() -> list[str]:
    """The shipped checkpoint names (``ignn_lab/weights``), for a model picker."""
    from ignn_lab.models.pretrained import list_pretrained

    return list(list_pretrained())


def _resolve_model(model: Any, scale: int) -> tuple[torch.nn.Module, str]:
    """A shipped checkpoint name, a checkpoint path, a registry name (random weights) or a module →
    (net, name)."""
    from ignn_lab.engine.inference import resolve_model
    from ignn_lab.models.pretrained import pretrained_path

    if isinstance(model, str) and pretrained_path(model) is not None:
        net, _ = resolve_model(pretrained_path(model), scale)
        return net, model
    return resolve_model(model, scale)


def _box(*values: Any) -> list[int]:
    return [int(v) for v in values]


def _psnr(a: Tensor, b: Tensor) -> float | None:
    mse = float((a.double() - b.double()).pow(2).mean())
    return 10 * float(np.log10(1 / mse)) if mse > 0 else None


class Explorer:
    """The cross-scale graph of one image, per setting, and the answer for any query patch (module docstring).

    Args:
        image: a file, ``SET/NAME`` (``skimage/astronaut``, ``Urban100/img_004``) or a uint8 H×W(×3) array;
            treated as HR.
        scale: SR scale s >= 2 (LR = MATLAB bicubic of the HR by 1/s; the image-space graph scale is s too).
        k, window, patch_size, embedding: the image-space graph
            (:func:`~ignn_lab.graph.aggregate.search_graph`).
        model: None; a shipped checkpoint name (:func:`model_choices`); a checkpoint path (kit or released
            IGNN); a registry name (random weights, with a warning); or an ``nn.Module`` of scale ``scale``.
        data_root: where ``SET`` folders live.
        progress: called as ``progress(message, fraction)`` while a stage builds (fraction in [0, 1]).

    Attributes:
        query: (row, col) of the selected query patch's top-left corner in LR pixels.
        selection: the last :meth:`select` result.
        timings: seconds of the last build of each stage (``image``, ``graph``, ``model``).
    """

    def __init__(self, image: str | os.PathLike | np.ndarray = SETTINGS["image"], *, scale: int = 2,
                 k: int = 5, window: int | None = 30, patch_size: int = 3, embedding: str = "pixel",
                 model: Any = None, data_root: str | os.PathLike | None = None,
                 progress: Progress | None = None):
        self.progress = progress
        self._settings: dict[str, Any] = {}
        self._image: _ImageState | None = None
        self._graphs: OrderedDict[tuple, _GraphState] = OrderedDict()
        self._graph: _GraphState | None = None
        self._model: _ModelState | None = None
        self._generation = 0
        self.timings: dict[str, float] = {}
        self.query: tuple[int, int] = (0, 0)
        self.selection: dict | None = None
        self.update(image=image, scale=scale, k=k, window=window, patch_size=patch_size, embedding=embedding,
                    model=model, data_root=data_root)

    # ------------------------------------------------------------------ state
    @property
    def settings(self) -> dict[str, Any]:
        """The current settings (a copy)."""
        return dict(self._settings)

    @property
    def label(self) -> str:
        """The image's name (``SET/NAME``, the path, or ``array``)."""
        return self._image.label

    @property
    def hr(self) -> Tensor:
        """C×H×W uint8, the mod-cropped HR (ground truth)."""
        return self._image.hr

    @property
    def lr(self) -> Tensor:
        """C×h×w float in [0, 1], the LR."""
        return self._image.lr[0]

    @property
    def graph(self) -> MatchGraph:
        """The image-space graph of the current settings."""
        return self._graph.mg

    @property
    def son(self) -> Tensor:
        """C×h'×w', the image-space graph's son (LR/s)."""
        return self._graph.mg.son[0]

    @property
    def recurrence(self) -> Tensor:
        """h×w, the best-match distance per LR pixel
        (:func:`~ignn_lab.graph.aggregate.recurrence_from_graph`)."""
        return self._graph.recurrence

    @property
    def model_name(self) -> str | None:
        """The model's display name, or None."""
        return None if self._model is None else self._model.name

    @property
    def model_son(self) -> Tensor | None:
        """3×h'×w', the son the model's graph searched (None without a model graph)."""
        return None if self._model is None else self._model.son

    @property
    def sr(self) -> Tensor | None:
        """C×H×W in [0, 1], the model's SR image (None without a model)."""
        return None if self._model is None else self._model.sr

    @property
    def bicubic(self) -> Tensor:
        """C×H×W float in [0, 1], MATLAB bicubic ×s of the (uint8) LR."""
        st = self._image
        if st.bicubic is None:
            lr8 = (st.lr[0] * 255).round().to(torch.uint8)
            st.bicubic = imresize(lr8, self._settings["scale"]).float() / 255
        return st.bicubic

    def graph_description(self) -> str:
        """One line: what the image-space graph is."""
        s = self._settings
        win = "whole son" if self.graph.window is None else f"window {self.graph.window}"
        return (f"image-space graph (GraphAgg*): son = LR/{s['scale']}, {s['embedding']} embedding, "
                f"{s['patch_size']}×{s['patch_size']} patches, k={s['k']}, {win}")

    def model_description(self) -> str | None:
        """One line: what the model's own graph is, or None without a model."""
        m = self._model
        if m is None:
            return None
        if m.graph is None:
            return f"{m.name}: no graph layer (SR only)"
        gc = m.module.gcn.config
        win = "whole son" if m.graph.window is None else f"window {m.graph.window}"
        return (f"{m.name}'s own graph: son = LR/{m.graph.graph_scale}, {gc.embedding} embedding, "
                f"{gc.patch_size}×{gc.patch_size} patches, k={gc.k}, {win}; learned edge weights "
                f"({gc.edge_weighting}) over its features")

    def image_choices(self) -> list[str]:
        """:func:`image_choices` under this explorer's ``data_root``."""
        return image_choices(self._settings["data_root"])

    @staticmethod
    def model_choices() -> list[str]:
        """:func:`model_choices`: the shipped checkpoint names."""
        return model_choices()

    # ------------------------------------------------------------------ building
    def _report(self, message: str, fraction: float) -> None:
        if self.progress is not None:
            self.progress(message, fraction)

    def _build_image(self, s: dict, label: str | None) -> _ImageState:
        what = s["image"] if isinstance(s["image"], (str, os.PathLike)) else "the image"
        self._report(f"reading {what}", 0.0)
        hr_np, found = load_hr(s["image"], s["data_root"])
        label = label if label and isinstance(s["image"], np.ndarray) else found
        hr, lr = _protocol_lr(hr_np, s["scale"])
        self._generation += 1
        return _ImageState(label, hr, lr, self._generation)

    def _build_graph(self, image: _ImageState, s: dict) -> tuple[_GraphState, bool]:
        """The graph of these settings and whether it came from the cache."""
        key = (image.generation, s["scale"], *(s[k] for k in _GRAPH_KEYS))
        if key in self._graphs:
            self._graphs.move_to_end(key)
            return self._graphs[key], True
        self._report(f"son, {s['embedding']} embedding and kNN search (k={s['k']}, window {s['window']})",
                     0.2)
        t = time.perf_counter()
        mg = search_graph(image.lr, s["scale"], k=s["k"], window=s["window"], embedding=s["embedding"],
                          patch_size=s["patch_size"])
        self._report("recurrence map", 0.7)
        st = _GraphState(mg, recurrence_from_graph(mg)[0, 0], time.perf_counter() - t)
        self._graphs[key] = st
        while len(self._graphs) > GRAPH_CACHE:
            self._graphs.popitem(last=False)
        return st, False

    def clear_cache(self) -> None:
        """Forget the kept graphs of other settings (the current one stays)."""
        self._graphs = OrderedDict((k, v) for k, v in self._graphs.items() if v is self._graph)

    def _build_model(self, image: _ImageState, s: dict) -> _ModelState | None:
        if s["model"] is None:
            return None
        net, name = _resolve_model(s["model"], s["scale"])
        self._report(f"{name}: one forward on the {image.lr.shape[-2]}×{image.lr.shape[-1]} LR", 0.8)
        t = time.perf_counter()
        lr = image.lr.expand(-1, 3, -1, -1) if image.lr.shape[1] == 1 else image.lr
        gcn = getattr(net, "gcn", None)
        was_debug = getattr(gcn, "debug", False)
        if gcn is not None:
            gcn.debug = True
        try:
            with torch.no_grad():
                sr = net.eval()(lr.contiguous())[0].clamp(0, 1)
            graph = None if gcn is None else gcn.last_graph
            weights = None if gcn is None else gcn.last_intermediates["weights"].detach()
            son = net.son_of(lr)[0] if graph is not None and net.needs_son else None
        finally:
            if gcn is not None:
                gcn.debug = was_debug
                if not was_debug:
                    gcn.last_intermediates = {}
        if image.lr.shape[1] == 1:  # grey: the network saw three equal channels; report their mean
            sr = sr.mean(0, keepdim=True)
        return _ModelState(name, net, sr, graph, weights, son, time.perf_counter() - t)

    def update(self, *, label: str | None = None, **changes: Any) -> dict:
        """Change settings and rebuild only the stages that depend on them (the state is unchanged on error).

        Args:
            label: the name to show for an ``image`` given as an array (e.g. an uploaded file's name).
            **changes: any of :data:`SETTINGS` (``image``, ``scale``, ``k``, ``window``, ``patch_size``,
                ``embedding``, ``model``, ``data_root``).

        Returns:
            ``{"rebuilt": [stage, ...], "seconds": {stage: s}, "cached": [...]}`` (``cached``: ``["graph"]``
            when the graph of these settings was kept from before). The selected query keeps its LR position
            (re-snapped to the new patch grid) unless the image changed: then it is the most recurrent patch.
        """
        new = _check_settings({**SETTINGS, **self._settings, **changes})
        old = self._settings
        image_changed = self._image is None or any(not _same(new[k], old.get(k)) for k in _IMAGE_KEYS)
        graph_changed = image_changed or any(not _same(new[k], old.get(k)) for k in _GRAPH_KEYS)
        model_changed = image_changed or not _same(new["model"], old.get("model"))
        seconds: dict[str, float] = {}
        t = time.perf_counter()
        image = self._build_image(new, label) if image_changed else self._image
        if image_changed:
            seconds["image"] = time.perf_counter() - t
        t = time.perf_counter()
        graph, cached = self._build_graph(image, new) if graph_changed else (self._graph, False)
        if graph_changed:
            seconds["graph"] = time.perf_counter() - t
        t = time.perf_counter()
        model = self._build_model(image, new) if model_changed else self._model
        if model_changed:
            seconds["model"] = time.perf_counter() - t
        self._settings, self._image, self._graph, self._model = new, image, graph, model
        self.timings.update(seconds)
        self._report("ready", 1.0)
        if image_changed:
            self.select_most_recurrent()
        else:
            self.select(*self.query)
        return {"rebuilt": list(seconds), "seconds": seconds, "cached": ["graph"] if cached else []}

    # ------------------------------------------------------------------ answering
    def query_index(self, row: int, col: int) -> int:
        """Flat query-grid index of the patch under LR pixel (row, col)
        (:func:`~ignn_lab.lab.explore.snap_query`)."""
        return snap_query((int(row), int(col)), tuple(self.lr.shape[-2:]), self.graph.query_grid)

    def select_most_recurrent(self) -> dict:
        """Select the most recurrent textured patch (:func:`~ignn_lab.lab.explore.most_recurrent_query`)."""
        qi = most_recurrent_query(self.graph)
        return self._select(qi, None, "most recurrent textured patch")

    def select(self, row: int, col: int) -> dict:
        """Everything the explorer shows for the query patch under LR pixel (row, col); no search runs.

        Args:
            row, col: an LR pixel; the query is the patch whose top-left corner is (row, col) snapped down to
                the stride-2 patch grid (and into it).

        Returns:
            The :func:`~ignn_lab.lab.explore.explore` record (``query``, ``neighbours`` with son / HR-source
            boxes, distances and weights, settings, ``aggregate_psnr_vs_ground_truth``) plus:
            ``details`` (:class:`~ignn_lab.graph.aggregate.GraphAggDetails` of this one query: query, son,
            raw and AdaPN HR patches, weights, aggregate), ``ground_truth`` (C×P×P HR patch under the query),
            ``window_box`` (son pixels, None for a whole-son search), ``graph`` (:meth:`graph_description`),
            ``model`` (None, or the model's own neighbours for this query with their learned weights and the
            SR / bicubic / HR crops: see :meth:`model_selection`) and ``seconds``.
        """
        return self._select(self.query_index(row, col), (int(row), int(col)), "requested")

    def move(self, drow: int, dcol: int) -> dict:
        """Select the patch ``drow`` patches down and ``dcol`` right of the current one (stopping at the
        edges)."""
        m1, m2 = self.graph.query_grid
        i = min(max(self.query[0] // STRIDE + int(drow), 0), m1 - 1)
        j = min(max(self.query[1] // STRIDE + int(dcol), 0), m2 - 1)
        return self.select(i * STRIDE, j * STRIDE)

    def _select(self, qi: int, requested: tuple[int, int] | None, how: str) -> dict:
        t = time.perf_counter()
        mg, s = self.graph, self._settings
        det = graphagg_details(mg, [qi])
        gt = crop_box(self.hr.float() / 255, det.output_boxes[0])
        settings = {k: s[k] for k in ("scale", "k", "window", "embedding", "patch_size")}
        info = _record(self.label, self.hr, mg, det, gt, requested, how, settings)
        q = info["query"]
        self.query = (q["row"], q["col"])
        info["details"] = det
        info["ground_truth"] = gt
        info["window_box"] = None if det.window_boxes is None else _box(*det.window_boxes[0])
        info["graph"] = self.graph_description()
        self.selection = info
        info["model"] = self.model_selection() if self._model is not None else None
        info["seconds"] = time.perf_counter() - t
        return info

    def model_selection(self, margin: int = CROP_MARGIN) -> dict:
        """The model's view of the selected query patch.

        Returns:
            ``name``, ``description``; ``neighbours``: the model's own k neighbours of the query patch (its
            query patch is the one under the selected patch's top-left pixel, on the model's patch grid):
            ``rank``, ``son_index``, ``son_box`` (in the model's son, :attr:`model_son`), ``hr_source_box``
            (LR pixels: the g·p block whose features the network aggregates), ``distance`` (squared L2 in the
            model's embedding), ``weight_lr`` and ``weight_hr`` (the softmax rank weights of the LR and HR
            paths at the query's centre pixel; with 3×3 patches and stride 2 that pixel lies in this query's
            patch only, so the weights are this query's alone); ``query_box``, ``query_index``; ``crops``: the
            SR, bicubic and HR crops around the query (``box`` in HR pixels, ``margin`` LR pixels of context,
            each C×h×w in [0, 1]) and the PSNR of SR and bicubic against HR on the crop (RGB).
            ``neighbours`` is empty for a model without a graph layer.
        """
        m = self._model
        row, col = self.query
        out: dict[str, Any] = {"name": m.name, "description": self.model_description(), "neighbours": []}
        if m.graph is not None:
            g = m.graph
            t, p, gs = g.stride, g.patch_size, g.graph_scale
            (m1, m2), n2 = g.query_grid, g.son_grid[1]
            i, j = min(row // t, m1 - 1), min(col // t, m2 - 1)
            qi = i * m2 + j
            cy, cx = min(i * t + p // 2, self.lr.shape[-2] - 1), min(j * t + p // 2, self.lr.shape[-1] - 1)
            k = g.index.shape[-1]
            w_hr = m.weights[1] if m.weights.shape[0] > 1 else None
            for r in range(k):
                n = int(g.index[0, qi, r])
                sr_, sc_ = divmod(n, n2)
                son_box = _box(sr_ * t, sc_ * t, p, p)
                # same-scale models aggregate the neighbour's own LR patch, enlarged: its source is itself
                source = _box(gs * t * sr_, gs * t * sc_, gs * p, gs * p) if m.son is not None else son_box
                out["neighbours"].append({
                    "rank": r + 1, "son_index": n, "son_box": son_box, "hr_source_box": source,
                    "distance": float(g.distance[0, qi, r]), "weight_lr": float(m.weights[0, r, cy, cx]),
                    "weight_hr": None if w_hr is None else float(w_hr[r, cy, cx])})
            out["query_box"] = _box(i * t, j * t, p, p)
            out["query_index"] = qi
            out["graph_scale"] = gs
        s = self._settings["scale"]
        qbox = self.selection["query"]["lr_box"]
        H, W = self.hr.shape[-2:]
        top, left = max(0, (qbox[0] - margin) * s), max(0, (qbox[1] - margin) * s)
        bottom = min(H, (qbox[0] + qbox[2] + margin) * s)
        right = min(W, (qbox[1] + qbox[3] + margin) * s)
        box = (top, left, bottom - top, right - left)
        hr = crop_box(self.hr.float() / 255, box)
        sr, bic = crop_box(m.sr, box), crop_box(self.bicubic, box)
        out["crops"] = {"box": list(box), "margin": margin, "sr": sr, "bicubic": bic, "hr": hr,
                        "psnr_sr": _psnr(sr, hr), "psnr_bicubic": _psnr(bic, hr)}
        return out

    def save_figure(self, out: str | os.PathLike, query: tuple[int, int] | None = None) -> dict:
        """The static match figure and JSON record of ``query`` (None: the most recurrent textured patch).

        The same figure and record as :func:`~ignn_lab.lab.explore.explore` with these settings; selects the
        query. Returns the record with ``figure`` and ``json`` (the paths written).
        """
        out = check_figure_path(out)
        if query is None:
            info = self.select_most_recurrent()
        else:
            if len(query) != 2 or not all(isinstance(v, (int, np.integer)) for v in query):
                raise TypeError(f"query must be (row, col) ints in LR pixels or None, got {query!r}")
            info = self.select(*query)
        record = {k: v for k, v in info.items()
                  if k not in ("details", "ground_truth", "window_box", "graph", "model", "seconds")}
        return write_match_figure(record, self.graph, info["details"], info["ground_truth"], self.recurrence,
                                  Path(out))
