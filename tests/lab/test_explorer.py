"""``Explorer`` without a browser: selections against the engine called directly, boxes, settings changes,
model and no-model modes, grey and tiny images, and the static twin (same record as ``explore``)."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ignn_lab.data.degrade import make_son
from ignn_lab.data.imresize import imresize
from ignn_lab.graph import cross_scale_knn
from ignn_lab.graph.aggregate import crop_box, graphagg_details, search_graph
from ignn_lab.graph.embed import embed
from ignn_lab.lab.explore import explore, load_hr, most_recurrent_query
from ignn_lab.lab.explorer import Explorer

HR, _ = load_hr("skimage/astronaut")
CROP = np.ascontiguousarray(HR[96:224, 150:278])  # 128×128 HR → 64×64 LR at ×2


def _lr(hr: np.ndarray, s: int) -> torch.Tensor:
    t = torch.from_numpy(hr)
    t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)
    hr = t[:, : t.shape[1] - t.shape[1] % s, : t.shape[2] - t.shape[2] % s].contiguous()
    return imresize(hr, 1 / s)[None].float() / 255


def _embed3(x):
    return embed(x.expand(-1, 3, -1, -1), "pixel")


@pytest.fixture(scope="module")
def ex():
    return Explorer(CROP, scale=2, k=4, window=10)


@pytest.mark.parametrize("pixel", [(0, 0), (17, 30), (31, 8), (63, 63), (62, 1)])
def test_select_is_the_engine(ex, pixel):
    sel = ex.select(*pixel)
    lr = _lr(CROP, 2)
    g = cross_scale_knn(_embed3(lr), _embed3(make_son(lr, 2)), k=4, window=10, graph_scale=2)
    m2 = g.query_grid[1]
    i, j = min(pixel[0] // 2, g.query_grid[0] - 1), min(pixel[1] // 2, m2 - 1)
    qi = i * m2 + j
    q = sel["query"]
    assert q["index"] == qi and q["lr_box"] == [2 * i, 2 * j, 3, 3]
    assert [n["son_index"] for n in sel["neighbours"]] == g.index[0, qi].tolist()
    assert [n["distance"] for n in sel["neighbours"]] == g.distance[0, qi].tolist()
    det = graphagg_details(search_graph(lr, 2, k=4, window=10), [qi])
    for name in ("son_patches", "hr_patches", "hr_patches_adapn", "aggregate", "weights", "son_boxes",
                 "hr_boxes"):
        assert torch.equal(getattr(sel["details"], name), getattr(det, name)), name
    # the HR patches are the LR blocks the boxes name (zeros beyond s·⌊H/s⌋)
    for r, n in enumerate(sel["neighbours"]):
        assert torch.equal(sel["details"].hr_patches[0, r], crop_box(lr[0], n["hr_source_box"]))
    hr = torch.from_numpy(CROP).permute(2, 0, 1).float() / 255
    assert torch.equal(sel["ground_truth"], crop_box(hr, q["hr_box"]))
    assert q["hr_box"] == [4 * i, 4 * j, 6, 6]


def test_boxes_lie_inside_the_images(ex):
    mg = ex.graph
    H, W = ex.lr.shape[-2:]
    h, w = ex.son.shape[-2:]
    qpad, spad = mg.query_padding, mg.son_padding  # (top, bottom, left, right)
    rng = np.random.default_rng(0)
    for row, col in zip(rng.integers(0, H, 40), rng.integers(0, W, 40)):
        sel = ex.select(int(row), int(col))
        t, l, bh, bw = sel["query"]["lr_box"]
        assert t <= row < t + bh + 1 and l <= col < l + bw + 1  # the patch under the pixel (snapped down)
        assert 0 <= t and t + bh <= H + qpad[1] and 0 <= l and l + bw <= W + qpad[3]
        wt, wl, wh, ww = sel["window_box"]
        for n in sel["neighbours"]:
            t, l, bh, bw = n["son_box"]
            assert 0 <= t and t + bh <= h + spad[1] and 0 <= l and l + bw <= w + spad[3]
            assert wt <= t and t + bh <= wt + wh and wl <= l and l + bw <= wl + ww  # inside the window
            t, l, bh, bw = n["hr_source_box"]
            assert 0 <= t and t + bh <= 2 * (h + spad[1]) and 0 <= l and l + bw <= 2 * (w + spad[3])
        t, l, bh, bw = sel["query"]["hr_box"]
        assert t + bh <= 2 * (H + qpad[1]) and l + bw <= 2 * (W + qpad[3])


def test_settings_rebuild_only_what_depends_on_them():
    e = Explorer(CROP, scale=2, k=4, window=10)
    e.select(20, 30)
    image = e._image
    rep = e.update(k=2)
    assert rep["rebuilt"] == ["graph"] and rep["cached"] == []
    assert e._image is image and len(e.selection["neighbours"]) == 2
    assert e.query == (20, 30)  # the query keeps its place
    rep = e.update(k=4)  # back: the kept graph, no search
    assert rep["rebuilt"] == ["graph"] and rep["cached"] == ["graph"]
    assert rep["seconds"]["graph"] < 0.5
    assert e.update(k=4)["rebuilt"] == []
    rep = e.update(patch_size=5)
    assert rep["rebuilt"] == ["graph"] and e.selection["query"]["lr_box"] == [20, 30, 5, 5]
    assert e.selection["details"].hr_patches.shape[-1] == 10
    rep = e.update(window=None)
    assert rep["rebuilt"] == ["graph"] and e.graph.window is None and e.selection["window_box"] is None
    rep = e.update(scale=3)
    assert rep["rebuilt"] == ["image", "graph", "model"] and tuple(e.lr.shape[-2:]) == (42, 42)
    assert e.selection["query"]["chosen_by"].startswith("most recurrent")
    e.clear_cache()
    assert list(e._graphs.values()) == [e._graph]


def test_bad_settings_leave_the_state_unchanged(ex):
    before, query = ex.settings, ex.query
    with pytest.raises(ValueError, match="unknown explorer setting"):
        ex.update(kk=3)
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        ex.update(k=0)
    with pytest.raises(ValueError, match="embedding must be one of"):
        ex.update(embedding="sift")
    with pytest.raises(ValueError, match="unknown set"):
        ex.update(image="no/such/thing.png")
    with pytest.raises(ValueError, match="neither an existing checkpoint"):
        ex.update(model="no-such-model")
    with pytest.raises(ValueError, match="outside"):
        ex.select(64, 0)
    assert ex.settings == before and ex.query == query


def test_move_by_patches(ex):
    ex.select(20, 30)
    assert ex.move(1, 0)["query"]["lr_box"][:2] == [22, 30]
    assert ex.move(0, -2)["query"]["lr_box"][:2] == [22, 26]
    m1, m2 = ex.graph.query_grid
    assert ex.move(1000, 1000)["query"]["lr_box"][:2] == [2 * (m1 - 1), 2 * (m2 - 1)]
    assert ex.move(-1000, -1000)["query"]["lr_box"][:2] == [0, 0]


def test_grey_image():
    import skimage.data

    grey = np.ascontiguousarray(skimage.data.camera()[100:196, 200:300])
    e = Explorer(grey, scale=2, k=3, window=8)
    sel = e.select(10, 12)
    assert e.lr.shape[0] == 1 and sel["details"].hr_patches.shape[2] == 1
    lr = _lr(grey, 2)
    g = cross_scale_knn(_embed3(lr), _embed3(make_son(lr, 2)), k=3, window=8, graph_scale=2)
    assert [n["son_index"] for n in sel["neighbours"]] == g.index[0, sel["query"]["index"]].tolist()


def test_image_smaller_than_the_window():
    tiny = np.ascontiguousarray(CROP[:40, :44])  # LR 20×22, son 10×11: a 5×6 son grid < window 30
    e = Explorer(tiny, scale=2, k=3, window=30)
    assert e.graph.window is None  # the window covers the son grid: a whole-son search
    sel = e.select(9, 13)
    assert sel["window_box"] is None
    lr = _lr(tiny, 2)
    g = cross_scale_knn(_embed3(lr), _embed3(make_son(lr, 2)), k=3, window=None, graph_scale=2)
    assert [n["son_index"] for n in sel["neighbours"]] == g.index[0, sel["query"]["index"]].tolist()
    with pytest.raises(ValueError, match="too small"):
        Explorer(np.ascontiguousarray(CROP[:8, :8]), scale=2)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from ignn_lab.models import build, save

    torch.manual_seed(0)
    net = build("ignn-lite", 2)
    with torch.no_grad():  # spread the untrained edge weights so that the ranks' weights differ clearly
        for p in [*net.gcn.weightnet_lr.parameters(), *net.gcn.weightnet_hr.parameters()]:
            p.normal_(0, 1)
    return save(net, tmp_path_factory.mktemp("model") / "ignn-lite.pt")


def test_model_neighbours_weights_and_crops(checkpoint):
    from ignn_lab.models import load

    e = Explorer(CROP, scale=2, k=5, window=30, model=str(checkpoint))
    sel = e.select(30, 22)
    m = sel["model"]
    assert m["name"] == "ignn-lite" and "own graph" in m["description"] and len(m["neighbours"]) == 3
    lr = _lr(CROP, 2)
    son = make_son(lr, 2)
    qe, se = embed(lr, "pixel"), embed(son, "pixel")  # the model's embedding
    g = cross_scale_knn(qe, se, k=3, window=8, graph_scale=2)
    qi = 15 * g.query_grid[1] + 11
    assert m["query_index"] == qi and m["query_box"] == [30, 22, 3, 3]
    assert [n["son_index"] for n in m["neighbours"]] == g.index[0, qi].tolist()
    assert [n["distance"] for n in m["neighbours"]] == pytest.approx(g.distance[0, qi].tolist(), rel=1e-6)
    # learned weights, recomputed from the spec: |query − neighbour| summed over the 3×3 positions per
    # channel, each weight net on that vector, softmax over the ranks
    net = load(checkpoint)
    sep = F.pad(se, (0, 2, 0, 2))
    q = qe[0, :, 30:33, 22:25]
    diffs = torch.stack([(q - sep[0, :, t: t + 3, l: l + 3]).abs().sum((1, 2))
                         for t, l, _, _ in (n["son_box"] for n in m["neighbours"])])  # k×3
    with torch.no_grad():
        w_lr = torch.softmax(net.gcn.weightnet_lr(diffs[:, :, None, None]).flatten(), 0)
        w_hr = torch.softmax(net.gcn.weightnet_hr(diffs[:, :, None, None]).flatten(), 0)
    assert [n["weight_lr"] for n in m["neighbours"]] == pytest.approx(w_lr.tolist(), abs=1e-5)
    assert [n["weight_hr"] for n in m["neighbours"]] == pytest.approx(w_hr.tolist(), abs=1e-5)
    assert max(w_lr) - min(w_lr) > 0.05  # the check can tell the ranks apart
    for n in m["neighbours"]:
        t, l, _, _ = n["son_box"]
        assert n["hr_source_box"] == [2 * t, 2 * l, 6, 6]
    # crops: SR = the network's output, bicubic = imresize ×2 of the uint8 LR, HR = the ground truth
    c = m["crops"]
    with torch.no_grad():
        sr = net(lr)[0].clamp(0, 1)
    assert c["box"] == [2 * (30 - 8), 2 * (22 - 8), 2 * 19, 2 * 19]
    assert torch.allclose(c["sr"], crop_box(sr, c["box"]), atol=1e-5)
    bic = imresize((lr[0] * 255).round().to(torch.uint8), 2).float() / 255
    assert torch.equal(c["bicubic"], crop_box(bic, c["box"]))
    hr = torch.from_numpy(CROP).permute(2, 0, 1).float() / 255
    assert torch.equal(c["hr"], crop_box(hr, c["box"]))
    mse = float((c["bicubic"].double() - c["hr"]).pow(2).mean())
    assert c["psnr_bicubic"] == pytest.approx(10 * np.log10(1 / mse))
    # the image-space graph is unchanged by the model
    alone = Explorer(CROP, scale=2).select(30, 22)["neighbours"]
    assert [n["son_index"] for n in sel["neighbours"]] == [n["son_index"] for n in alone]


def test_model_and_no_model_modes(checkpoint):
    e = Explorer(CROP, scale=2, k=3, window=10)
    assert e.select(10, 10)["model"] is None and e.model_description() is None
    rep = e.update(model=str(checkpoint))
    assert rep["rebuilt"] == ["model"] and e.select(10, 10)["model"]["neighbours"]
    assert e.update(k=2)["rebuilt"] == ["graph"]  # the model is not run again
    assert e.update(model=None)["rebuilt"] == ["model"] and e.selection["model"] is None
    with pytest.raises(ValueError, match="×2 network, but scale=3"):
        e.update(model=str(checkpoint), scale=3)
    assert e.settings["model"] is None and e.settings["scale"] == 2


def test_model_without_a_graph_layer(tmp_path):
    from ignn_lab.models import build, save

    path = save(build("edsr-lite", 2), tmp_path / "edsr.pt")
    e = Explorer(CROP, scale=2, k=3, window=10, model=str(path))
    m = e.select(10, 10)["model"]
    assert m["neighbours"] == [] and "no graph layer" in m["description"] and m["crops"]["sr"].shape[0] == 3
    assert e.model_son is None


def test_grey_image_with_a_model(checkpoint):
    import skimage.data

    grey = np.ascontiguousarray(skimage.data.camera()[100:196, 200:300])
    e = Explorer(grey, scale=2, k=3, window=8, model=str(checkpoint))
    m = e.select(10, 12)["model"]
    assert e.sr.shape[0] == 1 and m["crops"]["sr"].shape[0] == 1 and len(m["neighbours"]) == 3


def test_static_twin_is_explore(tmp_path):
    e = Explorer(CROP, scale=2, k=4, window=10)
    a = e.save_figure(tmp_path / "a.png", query=(21, 30))
    b = explore(CROP, scale=2, query=(21, 30), k=4, window=10, out=tmp_path / "b.png")
    strip = {"figure", "json"}
    assert {k: v for k, v in a.items() if k not in strip} == {k: v for k, v in b.items() if k not in strip}
    assert json.loads((tmp_path / "a.json").read_text())["neighbours"] == b["neighbours"]
    auto = e.save_figure(tmp_path / "c.svg")
    assert auto["query"]["chosen_by"].startswith("most recurrent")
    assert auto["query"]["index"] == most_recurrent_query(search_graph(_lr(CROP, 2), 2, k=4, window=10))
    with pytest.raises(ValueError, match=".png, .pdf or .svg"):
        e.save_figure(tmp_path / "x.jpg")
