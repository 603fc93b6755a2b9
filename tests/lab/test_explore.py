"""``explore``: figure + JSON for skimage and Urban100 images, query snapping and the automatic query."""

import json

import numpy as np
import pytest
import torch

from ignn_lab.data.imresize import imresize
from ignn_lab.graph.aggregate import search_graph
from ignn_lab.graph.patches import im2patch
from ignn_lab.lab.explore import MIN_PATCH_STD, explore, most_recurrent_query, snap_query

PNG = b"\x89PNG\r\n\x1a\n"


def _brick(h=96, w=104):
    import skimage.data

    return np.ascontiguousarray(skimage.data.brick()[:h, :w])  # grey uint8


def _check_outputs(info, out):
    assert out.read_bytes()[:8] == PNG and info["figure"] == str(out)
    on_disk = json.loads(out.with_suffix(".json").read_text())
    assert on_disk == json.loads(json.dumps(info))
    assert len(info["neighbours"]) == info["k"]
    d = [n["distance"] for n in info["neighbours"]]
    assert d == sorted(d)


def test_explore_skimage_image(tmp_path):
    out = tmp_path / "astronaut.png"
    info = explore("skimage/astronaut", scale=4, out=out)  # LR 128×128
    _check_outputs(info, out)
    assert info["image"] == "skimage/astronaut"
    assert info["lr_size"] == [128, 128] and info["son_size"] == [32, 32]
    assert info["query"]["chosen_by"].startswith("most recurrent")
    q = info["query"]
    assert q["hr_box"] == [4 * q["row"], 4 * q["col"], 12, 12]
    for n in info["neighbours"]:  # HR sources are the son boxes, 4× larger
        assert n["hr_source_box"] == [4 * n["son_box"][0], 4 * n["son_box"][1], 12, 12]


def test_explore_urban100_image(tmp_path, data_root):
    out = tmp_path / "u4.png"
    info = explore("Urban100/img_004", scale=4, query=(40, 61), window=12, out=out, data_root=data_root)
    _check_outputs(info, out)
    assert info["image"] == "Urban100/img_004" and info["effective_window"] == 12
    assert info["query"]["lr_box"] == [40, 60, 3, 3] and info["query"]["snapped"] is True


def test_neighbours_are_the_graphs(tmp_path):
    hr = _brick()
    info = explore(hr, scale=2, query=(20, 31), k=4, window=6, out=tmp_path / "b.png")
    lr = imresize(torch.from_numpy(hr)[None], 0.5).float()[None] / 255
    mg = search_graph(lr, 2, k=4, window=6)
    qi = info["query"]["index"]
    assert qi == 10 * mg.query_grid[1] + 15 and info["query"]["lr_box"] == [20, 30, 3, 3]
    assert [n["son_index"] for n in info["neighbours"]] == mg.index[0, qi].tolist()
    n2 = mg.son_grid[1]
    for n in info["neighbours"]:
        assert n["son_box"] == [2 * (n["son_index"] // n2), 2 * (n["son_index"] % n2), 3, 3]


def test_automatic_query_is_the_lowest_distance_textured_patch():
    hr = _brick()
    lr = imresize(torch.from_numpy(hr)[None], 0.5).double()[None] / 255
    mg = search_graph(lr, 2, k=1)
    qi = most_recurrent_query(mg)
    q, (m1, m2), _ = im2patch(lr, 3, 2)
    std = q[0].std(-1)  # grey: one channel
    inside = torch.zeros(m1, m2, dtype=torch.bool)
    inside[: (lr.shape[-2] - 3) // 2 + 1, : (lr.shape[-1] - 3) // 2 + 1] = True
    inside = inside.view(-1)
    level = max(MIN_PATCH_STD, float(torch.quantile(std[inside], 0.9)))
    best = min((float(mg.distance[0, m, 0]), m) for m in range(m1 * m2) if inside[m] and std[m] >= level)
    assert qi == best[1]


def test_grey_and_bad_arguments(tmp_path):
    info = explore(_brick(60, 64), scale=3, query=(0, 0), out=tmp_path / "g.svg")
    assert (tmp_path / "g.svg").is_file() and info["query"]["snapped"] is False
    with pytest.raises(ValueError, match="outside"):
        snap_query((30, 5), (30, 40), (15, 20))
    assert snap_query((28, 38), (29, 39), (14, 19)) == 13 * 19 + 18  # snapped into the grid
    with pytest.raises(ValueError, match="out must end"):
        explore(_brick(), out=tmp_path / "x.txt")
    with pytest.raises(ValueError, match="no image"):
        explore("skimage/no_such_image", out=tmp_path / "x.png")
    with pytest.raises(ValueError, match="SET/NAME"):
        explore("nonexistent_file.png", out=tmp_path / "x.png")


def test_out_never_overwrites_the_input_image(tmp_path):
    """Fault 6: ``explore IMAGE --out IMAGE`` is refused; the image is untouched."""
    from ignn_lab.data.io import OutputError
    from tests.support import snapshot, write_png

    img = write_png(tmp_path / "img.png", 64, 64)
    before = snapshot(tmp_path)
    with pytest.raises(OutputError, match=f"writing {img} would overwrite the input {img}"):
        explore(img, out=img)
    assert snapshot(tmp_path) == before
    info = explore(img, out=tmp_path / "img_matches.png")
    assert info["figure"] == str(tmp_path / "img_matches.png") and snapshot(tmp_path)["img.png"] == before["img.png"]


def test_an_image_too_small_is_named(tmp_path):
    """Fault 11: the message names the image and the smallest size that works."""
    from tests.support import write_png

    img = write_png(tmp_path / "tiny.png", 11, 30)
    with pytest.raises(ValueError, match=f"{img}: 30×11 pixels is too small to explore at ×2 .*at least 12×12"):
        explore(img, out=tmp_path / "fig.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.png"]
