"""The interactive match explorer for JupyterLab: ipywidgets controls around one anywidget panel.

Import this module only where a front end is wanted; it needs ``anywidget`` and ``ipywidgets`` (the
``notebooks`` extra) and nothing in the core imports it. anywidget ships its JupyterLab extension prebuilt in
its wheel, so ``pip install`` is all JupyterLab 4 needs (no extension build).

The state lives in a :class:`ignn_lab.lab.explorer.Explorer` (passed in, used through its public methods:
``update``, ``select``, ``move``, ``save_figure``, its images and descriptions); this module only turns it
into pictures and forwards events. A click on the LR image or the recurrence map, or an arrow key, arrives
as a message handled by :meth:`ExplorerPanel.handle_message`, which tests call directly.

What the panel shows is drawn in the browser from what the kit's figures use (:mod:`ignn_lab.viz.matches`):
the same distance colours, recurrence colouring and context crops, and boxes that cover exactly the pixels
they name (an SVG ``rect`` at (left, top) of size w×h over an image whose pixel (r, c) spans
[c, c+1)×[r, r+1)).
"""

from __future__ import annotations

import base64
import functools
import io
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ignn_lab._optional import require
from ignn_lab.graph.aggregate import MATCH_EMBEDDINGS
from ignn_lab.viz.matches import context_box, distance_colors, recurrence_rgb, to_numpy_patch

__all__ = ["ExplorerPanel", "ExplorerUI", "explorer_widget", "png_data_url"]

_HINT = "pip install 'ignn-lab[notebooks]' (anywidget, ipywidgets)"
_ESM = Path(__file__).with_name("explorer_widget.js")
_CSS = Path(__file__).with_name("explorer_widget.css")
#: LR pixels of context in the zoomed query / neighbour panels (as in
#: :func:`~ignn_lab.viz.matches.match_figure`).
CONTEXT = 8
WINDOW_CHOICES: list[tuple[str, int | None]] = [("8", 8), ("15", 15), ("30", 30), ("60", 60),
                                               ("whole son", None)]


def png_data_url(image: Any) -> str:
    """A ``data:image/png;base64,…`` URL: a C×H×W tensor in [0, 1], an H×W(×3) float array in [0, 1] or a
    uint8 array."""
    import torch
    from PIL import Image

    a = to_numpy_patch(image) if isinstance(image, torch.Tensor) else np.asarray(image)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _picture(image: Any) -> dict:
    a = to_numpy_patch(image)
    return {"src": png_data_url(a), "h": int(a.shape[0]), "w": int(a.shape[1])}


def _crop(image: Any, box: Any, margin: int) -> dict:
    """The zoomed surroundings of ``box`` in a C×H×W image: picture and its origin in the full image."""
    r0, c0, r1, c1 = context_box(box, tuple(image.shape[-2:]), margin)
    return {**_picture(image[..., r0:r1, c0:c1]), "origin": [r0, c0]}


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "–" if v is None else format(v, spec)


@functools.cache
def _panel_class() -> type:
    anywidget = require("anywidget", _HINT)
    traitlets = require("traitlets", _HINT)

    class _Panel(anywidget.AnyWidget):
        _esm = _ESM.read_text()
        _css = _CSS.read_text()
        scene = traitlets.Dict().tag(sync=True)
        selection = traitlets.Dict().tag(sync=True)
        status = traitlets.Dict().tag(sync=True)
        display_size = traitlets.Int(300).tag(sync=True)

    return _Panel


class ExplorerPanel:
    """The anywidget that draws an :class:`~ignn_lab.lab.explorer.Explorer` and turns clicks into selections.

    Attributes:
        widget: the anywidget (traits ``scene``: the per-setting images; ``selection``: what the selected
            query shows; ``status``: message, progress fraction, busy flag, error).
        explorer: the state.
    """

    def __init__(self, explorer: Any, *, display_size: int = 300):
        self.explorer = explorer
        self.widget = _panel_class()(display_size=display_size)
        self.widget.on_msg(lambda _w, content, _buffers: self.handle_message(content))
        self._serial = 0
        self.refresh_scene()
        self.refresh_selection()
        self.set_status("ready")

    # -------------------------------------------------------------- python → browser
    def set_status(self, message: str, *, fraction: float | None = None, busy: bool = False,
                   error: str | None = None) -> None:
        """Show a status line (and a progress bar while ``busy``)."""
        self.widget.status = {"message": message, "fraction": fraction, "busy": busy, "error": error,
                              "time": time.time()}

    def refresh_scene(self) -> None:
        """Send the per-setting pictures: LR, son, recurrence map, the model's son, and the descriptions."""
        ex = self.explorer
        rec = ex.recurrence
        recurrence = {"src": png_data_url(recurrence_rgb(rec)), "h": int(rec.shape[-2]),
                      "w": int(rec.shape[-1])}
        scene = {"label": ex.label, "scale": ex.settings["scale"], "lr": _picture(ex.lr),
                 "son": _picture(ex.son), "recurrence": recurrence,
                 "graph": ex.graph_description(), "model": ex.model_description(), "model_son": None}
        if ex.model_son is not None:
            scene["model_son"] = _picture(ex.model_son)
        self.widget.scene = scene

    def refresh_selection(self) -> None:
        """Send what the selected query shows (from ``explorer.selection``)."""
        t = time.perf_counter()
        sel, ex = self.explorer.selection, self.explorer
        det = sel["details"]
        colors = distance_colors(det.distance[0])
        neighbours = [{**n, "color": c} for n, c in zip(sel["neighbours"], colors)]
        q = sel["query"]
        out = {
            "query": {"box": q["lr_box"], "row": q["row"], "col": q["col"], "index": q["index"],
                      "grid": q["grid"], "hr_box": q["hr_box"]},
            "window": sel["window_box"], "neighbours": neighbours,
            "query_ctx": _crop(ex.lr, q["lr_box"], CONTEXT),
            "son_ctx": [_crop(ex.son, n["son_box"], CONTEXT) for n in neighbours],
            "ground_truth": png_data_url(sel["ground_truth"]), "aggregate": png_data_url(det.aggregate[0]),
            "hr_raw": [png_data_url(p) for p in det.hr_patches[0]],
            "hr_adapn": [png_data_url(p) for p in det.hr_patches_adapn[0]],
            "psnr": sel["aggregate_psnr_vs_ground_truth"], "model": None,
        }
        m = sel["model"]
        if m is not None:
            mn = [dict(n) for n in m["neighbours"]]
            if mn:
                for n, c in zip(mn, distance_colors([n["distance"] for n in mn])):
                    n["color"] = c
            crops = m["crops"]
            out["model"] = {"name": m["name"], "description": m["description"], "neighbours": mn,
                            "query_box": m.get("query_box"),
                            "crops": {"box": crops["box"], "psnr_sr": crops["psnr_sr"],
                                      "psnr_bicubic": crops["psnr_bicubic"],
                                      **{k: png_data_url(crops[k]) for k in ("sr", "bicubic", "hr")}}}
        self._serial += 1
        out["serial"] = self._serial
        out["seconds"] = {"select": sel["seconds"], "render": time.perf_counter() - t}
        self.widget.selection = out

    # -------------------------------------------------------------- browser → python
    def click(self, panel: str, row: int, col: int) -> dict:
        """A click at pixel (row, col) of ``panel`` (``lr`` or ``recurrence``, both LR pixels): select the
        patch under it and redraw. Returns the new selection."""
        if panel not in ("lr", "recurrence"):
            raise ValueError(f"clicks select patches on the 'lr' or 'recurrence' panel, got {panel!r}")
        sel = self.explorer.select(int(row), int(col))
        self.refresh_selection()
        return sel

    def move(self, drow: int, dcol: int) -> dict:
        """Move the query by whole patches (arrow keys) and redraw."""
        sel = self.explorer.move(int(drow), int(dcol))
        self.refresh_selection()
        return sel

    def handle_message(self, content: dict) -> None:
        """A message from the browser: ``{"type": "click", "panel", "row", "col"}`` or ``{"type": "move",
        "drow", "dcol"}``. Errors are shown in the status line."""
        try:
            kind = content.get("type")
            if kind == "click":
                self.click(content["panel"], content["row"], content["col"])
            elif kind == "move":
                self.move(content["drow"], content["dcol"])
            else:
                raise ValueError(f"unknown message type {kind!r}")
            q = self.explorer.query
            self.set_status(f"query ({q[0]}, {q[1]})")
        except Exception as exc:  # noqa: BLE001 - shown to the user; the state is unchanged
            self.set_status("error", error=f"{type(exc).__name__}: {exc}")

    def apply(self, **changes: Any) -> dict | None:
        """``explorer.update(**changes)`` with progress in the status line; redraws what changed.

        Returns the update's report, or None when it failed (the error is shown; the state is unchanged).
        """
        def progress(message: str, fraction: float) -> None:
            self.set_status(message, fraction=fraction, busy=fraction < 1)

        self.explorer.progress = progress
        t = time.perf_counter()
        try:
            report = self.explorer.update(**changes)
        except Exception as exc:  # noqa: BLE001 - shown to the user; the state is unchanged
            self.set_status("error", error=f"{type(exc).__name__}: {exc}")
            return None
        finally:
            self.explorer.progress = None
        if report["rebuilt"]:
            self.refresh_scene()
        self.refresh_selection()
        built = ", ".join(f"{k} {'kept ' if k in report['cached'] else ''}{v:.2f} s"
                          for k, v in report["seconds"].items())
        self.set_status(f"rebuilt {built} ({time.perf_counter() - t:.2f} s)" if built else "no change")
        return report


class ExplorerUI:
    """The whole explorer: controls (image, upload, scale, k, window, patch size, embedding, model, save)
    above an :class:`ExplorerPanel`. Display it in a notebook (it shows its ``box``)."""

    def __init__(self, explorer: Any, *, out: str | os.PathLike = "runs/01_explore", display_size: int = 300):
        widgets = require("ipywidgets", _HINT)
        self.explorer = explorer
        self.out = Path(out)
        self.panel = ExplorerPanel(explorer, display_size=display_size)
        s = explorer.settings
        self._syncing = False

        def look(width: str) -> dict:
            return {"layout": widgets.Layout(width=width), "style": {"description_width": "initial"}}

        models = ["none", *explorer.model_choices()]
        c = self.controls = {
            "image": widgets.Combobox(value=self._image_text(), options=explorer.image_choices(),
                                      description="image", placeholder="SET/NAME or a path",
                                      ensure_option=False, continuous_update=False, **look("300px")),
            "upload": widgets.FileUpload(accept="image/*", multiple=False, description="upload"),
            "scale": widgets.Dropdown(options=sorted({2, 3, 4, s["scale"]}), value=s["scale"],
                                      description="scale", **look("120px")),
            "k": widgets.BoundedIntText(value=s["k"], min=1, max=20, description="k", **look("100px")),
            "window": widgets.Dropdown(options=self._window_options(s["window"]), value=s["window"],
                                       description="window", **look("160px")),
            "patch_size": widgets.Dropdown(options=sorted({3, 5, 7, s["patch_size"]}), value=s["patch_size"],
                                           description="patch", **look("120px")),
            "embedding": widgets.Dropdown(options=list(MATCH_EMBEDDINGS), value=s["embedding"],
                                          description="embedding", **look("200px")),
            "model": widgets.Combobox(value=self._model_text(s["model"]), options=models, description="model",
                                      placeholder="none, a shipped name or a checkpoint", ensure_option=False,
                                      continuous_update=False, **look("320px")),
            "save": widgets.Button(description="save figure",
                                   tooltip="the static figure + JSON of this query"),
        }
        self.saved = widgets.HTML()
        for key in ("image", "scale", "k", "window", "patch_size", "embedding", "model"):
            c[key].observe(functools.partial(self._on_setting, key), names="value")
        c["upload"].observe(self._on_upload, names="value")
        c["save"].on_click(lambda _b: self.save())
        rows = [widgets.HBox([c["image"], c["upload"], c["model"]]),
                widgets.HBox([c["scale"], c["k"], c["window"], c["patch_size"], c["embedding"], c["save"]]),
                self.saved, self.panel.widget]
        self.box = widgets.VBox(rows)

    @staticmethod
    def _window_options(window: int | None) -> list[tuple[str, int | None]]:
        opts = list(WINDOW_CHOICES)
        if window not in [v for _, v in opts]:
            opts.insert(-1, (str(window), window))
        return opts

    def _image_text(self) -> str:
        image = self.explorer.settings["image"]
        return str(image) if isinstance(image, (str, os.PathLike)) else self.explorer.label

    @staticmethod
    def _model_text(model: Any) -> str:
        if model is None:
            return "none"
        return str(model) if isinstance(model, (str, os.PathLike)) else type(model).__name__

    def _sync_controls(self) -> None:
        """Put the controls back to the explorer's settings (after an error)."""
        s, c = self.explorer.settings, self.controls
        self._syncing = True
        try:
            for key in ("scale", "k", "window", "patch_size", "embedding"):
                c[key].value = s[key]
            c["model"].value = self._model_text(s["model"])
            c["image"].value = self._image_text()
        finally:
            self._syncing = False

    def _on_setting(self, key: str, change: dict) -> None:
        if self._syncing:
            return
        value = change["new"]
        if key == "model":
            value = None if str(value).strip().lower() in ("", "none") else str(value).strip()
        if key == "image":
            value = str(value).strip()
            if not value:
                return
        if self.panel.apply(**{key: value}) is None:
            self._sync_controls()

    def _on_upload(self, change: dict) -> None:
        from ignn_lab.data.io import read_image

        files = change["new"]
        if not files:
            return
        f = files[0]
        name = f["name"]
        with tempfile.TemporaryDirectory() as d:  # decode through the kit's reader (same checks as a file)
            path = Path(d) / Path(name).name
            path.write_bytes(bytes(f["content"]))
            try:
                arr = read_image(path)
            except (OSError, ValueError) as exc:
                self.panel.set_status("error", error=f"{name}: {exc}")
                return
        if self.panel.apply(image=arr, label=f"upload/{name}") is not None:
            self._syncing = True
            self.controls["image"].value = f"upload/{name}"
            self._syncing = False

    def save(self) -> dict:
        """Write the static match figure and JSON of the selected query into ``out``."""
        ex = self.explorer
        row, col = ex.query
        name = ex.label.replace("/", "_").replace(os.sep, "_")
        path = self.out / f"{name}_x{ex.settings['scale']}_{row}_{col}.png"
        info = ex.save_figure(path, query=(row, col))
        self.saved.value = f"wrote <code>{info['figure']}</code> and <code>{info['json']}</code>"
        return info

    def _repr_mimebundle_(self, **kwargs: Any):
        return self.box._repr_mimebundle_(**kwargs)


def explorer_widget(explorer: Any, *, out: str | os.PathLike = "runs/01_explore",
                    display_size: int = 300) -> ExplorerUI:
    """The interactive explorer of an :class:`~ignn_lab.lab.explorer.Explorer` (display it in JupyterLab).

    Args:
        explorer: the state (its settings are the controls' initial values).
        out: where "save figure" writes the static figure and JSON of the selected query.
        display_size: width in screen pixels of each of the LR / son / recurrence panels.
    """
    return ExplorerUI(explorer, out=out, display_size=display_size)
