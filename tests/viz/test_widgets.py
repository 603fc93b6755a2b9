"""The explorer widget driven from Python: synthetic clicks and keys, controls, upload, save, the pictures
sent.

(The same widget in a real browser: ``tests/notebooks/test_explorer_browser.py``.)
"""

import base64
import io
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("anywidget")

from ignn_lab.lab.explore import load_hr  # noqa: E402
from ignn_lab.lab.explorer import Explorer  # noqa: E402
from ignn_lab.viz.matches import distance_colors  # noqa: E402
from ignn_lab.viz.widgets import explorer_widget, png_data_url  # noqa: E402

HR, _ = load_hr("skimage/astronaut")
CROP = np.ascontiguousarray(HR[96:224, 150:278])


def _decode(url: str) -> np.ndarray:
    from PIL import Image

    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


@pytest.fixture
def ui():
    return explorer_widget(Explorer(CROP, scale=2, k=4, window=10))


def test_a_click_selects_the_patch_under_it_and_changes_the_neighbour_panel(ui):
    panel, ex = ui.panel, ui.explorer
    before = panel.widget.selection
    panel.handle_message({"type": "click", "panel": "lr", "row": 41, "col": 9})  # what the browser sends
    after = panel.widget.selection
    assert after["query"]["box"] == [40, 8, 3, 3] and ex.query == (40, 8)
    assert after["serial"] == before["serial"] + 1
    assert [n["son_box"] for n in after["neighbours"]] != [n["son_box"] for n in before["neighbours"]]
    direct = ex.select(41, 9)  # the panel shows exactly what the explorer answers
    assert [n["son_box"] for n in after["neighbours"]] == [n["son_box"] for n in direct["neighbours"]]
    assert [n["color"] for n in after["neighbours"]] == distance_colors(direct["details"].distance[0])
    for r in range(4):
        shown = _decode(after["hr_raw"][r]).astype(float) / 255
        want = direct["details"].hr_patches[0, r].permute(1, 2, 0).numpy()
        assert np.abs(shown - want).max() <= 0.5 / 255 + 1e-6
    crop = after["son_ctx"][0]  # the zoomed son context: its origin and pixels
    r0, c0 = crop["origin"]
    son = (ex.son.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    assert np.array_equal(_decode(crop["src"]), son[r0: r0 + crop["h"], c0: c0 + crop["w"]])
    assert panel.widget.status["error"] is None


def test_recurrence_click_and_arrow_keys(ui):
    panel = ui.panel
    panel.handle_message({"type": "click", "panel": "recurrence", "row": 20, "col": 31})
    assert panel.widget.selection["query"]["box"][:2] == [20, 30]
    panel.handle_message({"type": "move", "drow": 1, "dcol": 0})
    assert panel.widget.selection["query"]["box"][:2] == [22, 30]
    panel.handle_message({"type": "move", "drow": 0, "dcol": -1})
    assert panel.widget.selection["query"]["box"][:2] == [22, 28]


def test_bad_messages_show_an_error_and_change_nothing(ui):
    panel = ui.panel
    sel = panel.widget.selection
    panel.handle_message({"type": "click", "panel": "son", "row": 1, "col": 1})
    assert "lr" in panel.widget.status["error"] and panel.widget.selection == sel
    panel.handle_message({"type": "click", "panel": "lr", "row": 500, "col": 1})
    assert "outside" in panel.widget.status["error"] and panel.widget.selection == sel
    panel.handle_message({"type": "zoom"})
    assert "unknown message" in panel.widget.status["error"]


def test_scene_pictures_are_the_images(ui):
    scene, ex = ui.panel.widget.scene, ui.explorer
    lr = (ex.lr.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    assert np.array_equal(_decode(scene["lr"]["src"]), lr)
    assert (scene["lr"]["h"], scene["lr"]["w"]) == (64, 64)
    assert (scene["son"]["h"], scene["son"]["w"]) == (32, 32) and scene["model_son"] is None
    assert _decode(scene["recurrence"]["src"]).shape == (64, 64, 3)
    assert scene["graph"].startswith("image-space graph") and scene["model"] is None


def test_controls_update_the_explorer(ui):
    c, panel = ui.controls, ui.panel
    c["k"].value = 2
    assert ui.explorer.settings["k"] == 2 and len(panel.widget.selection["neighbours"]) == 2
    c["window"].value = None
    assert ui.explorer.graph.window is None and panel.widget.selection["window"] is None
    assert "graph" in panel.widget.status["message"]
    c["image"].value = "no/such/image.png"  # an error: shown, the control goes back
    assert panel.widget.status["error"] and c["image"].value == ui.explorer.label
    c["image"].value = "skimage/camera"
    assert ui.explorer.label == "skimage/camera" and panel.widget.scene["label"] == "skimage/camera"


def test_upload_and_save(ui, tmp_path):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(CROP[:64, :80]).save(buf, format="PNG")
    ui._on_upload({"new": ({"name": "mine.png", "content": memoryview(buf.getvalue())},)})
    assert ui.explorer.label == "upload/mine.png" and ui.explorer.hr.shape[-2:] == (64, 80)
    ui._on_upload({"new": ({"name": "bad.png", "content": memoryview(b"not a png")},)})
    assert "bad.png" in ui.panel.widget.status["error"] and ui.explorer.label == "upload/mine.png"
    ui.out = tmp_path
    info = ui.save()
    assert Path(info["figure"]).parent == tmp_path and Path(info["figure"]).is_file()
    assert info["query"]["lr_box"][:2] == list(ui.explorer.query)


def test_model_panel(tmp_path):
    from ignn_lab.models import build, save

    path = save(build("ignn-lite", 2), tmp_path / "m.pt")
    ui = explorer_widget(Explorer(CROP, scale=2, k=4, window=10))
    ui.controls["model"].value = str(path)
    m = ui.panel.widget.selection["model"]
    assert m["name"] == "m" and len(m["neighbours"]) == 3 and ui.panel.widget.scene["model_son"]["h"] == 32
    assert {"sr", "bicubic", "hr", "psnr_sr", "psnr_bicubic", "box"} <= set(m["crops"])
    t, l, h, w = m["crops"]["box"]
    assert np.array_equal(_decode(m["crops"]["hr"]), CROP[t: t + h, l: l + w])
    ui.panel.click("lr", 5, 5)
    assert ui.panel.widget.selection["model"]["query_box"] == [4, 4, 3, 3]
    ui.controls["model"].value = "none"
    assert ui.panel.widget.selection["model"] is None and ui.panel.widget.scene["model"] is None


def test_png_data_url_round_trip():
    x = torch.rand(3, 5, 7)
    a = _decode(png_data_url(x))
    assert a.shape == (5, 7, 3) and np.abs(a / 255 - x.permute(1, 2, 0).numpy()).max() <= 0.5 / 255 + 1e-6
    g = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert np.array_equal(_decode(png_data_url(g)), g)
