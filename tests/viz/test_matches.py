"""Geometry of the match figure: every drawn box encloses exactly the pixels of the patch it names."""

import numpy as np
import pytest
import torch

from ignn_lab.data.imresize import imresize
from ignn_lab.graph.aggregate import crop_box, graphagg_details, recurrence_from_graph, search_graph
from ignn_lab.viz.matches import box_pixels, match_figure, to_numpy_patch


def _lr(h, w, scale):
    import skimage.data

    img = skimage.data.astronaut()[150: 150 + h * scale, 200: 200 + w * scale]
    hr = torch.from_numpy(img).permute(2, 0, 1).contiguous()
    return imresize(hr, 1 / scale).float()[None] / 255


def _expected(det, q, drawn):
    if drawn.names == "query":
        return det.query_patches[q]
    if drawn.names == "neighbour":
        return det.son_patches[q, drawn.rank]
    if drawn.names == "hr-source":
        return det.hr_patches[q, drawn.rank]
    raise AssertionError(drawn.names)


# (LR size, scale, window, query): interior queries, and border queries whose patches hold released padding
CASES = [((40, 46), 2, 6, "middle"), ((42, 47), 2, None, "last"), ((36, 45), 3, 4, "last"),
         ((31, 29), 3, 5, 0)]


@pytest.mark.parametrize("size,scale,window,where", CASES)
def test_boxes_enclose_the_patches_they_name(size, scale, window, where):
    lr = _lr(*size, scale)
    mg = search_graph(lr, scale, k=4, window=window)
    M = mg.query_grid[0] * mg.query_grid[1]
    q = {"middle": M // 2 + mg.query_grid[1] // 2, "last": M - 1}.get(where, where)
    det = graphagg_details(mg, [q])
    mf = match_figure(lr[0], mg.son[0], det, hr_patch=crop_box(lr[0], (0, 0, 3 * scale, 3 * scale)),
                      recurrence=recurrence_from_graph(mg)[0, 0])
    panels = {"lr": lr[0], "son": mg.son[0], "recurrence": None, "query_context": lr[0]}
    panels.update({f"son_context_{r}": mg.son[0] for r in range(mg.k)})
    checked = set()
    for drawn in mf.boxes:
        im = mf.images[drawn.panel]
        left, right, bottom, top = im.get_extent()
        assert right - left == im.get_array().shape[1] and bottom - top == im.get_array().shape[0]
        r, c, h, w = box_pixels(im, drawn.rect)
        # the box, in the panel's full-image pixels, is the box the details name
        assert (r + top + 0.5, c + left + 0.5, h, w) == drawn.box
        if drawn.names == "window":
            assert torch.equal(torch.tensor(drawn.box), det.window_boxes[0])
            for nb in det.son_boxes[0]:
                assert drawn.box[0] <= nb[0] and nb[0] + nb[2] <= drawn.box[0] + drawn.box[2]
                assert drawn.box[1] <= nb[1] and nb[1] + nb[3] <= drawn.box[1] + drawn.box[3]
            continue
        want = _expected(det, 0, drawn)
        if drawn.panel == "recurrence":
            assert drawn.box == tuple(int(v) for v in det.query_boxes[0])
            continue
        # the source of HR patches is the LR cropped to s·⌊H/s⌋ × s·⌊W/s⌋ (spec §9.10): compare inside it
        source = mg.hr_source[0] if drawn.names == "hr-source" else panels[drawn.panel]
        off_r, off_c = drawn.box[0] - r, drawn.box[1] - c  # the panel's origin in full-image pixels
        valid = np.asarray(im.get_array())[: source.shape[-2] - off_r, : source.shape[-1] - off_c]
        shown = valid[r: r + h, c: c + w]
        want_np = to_numpy_patch(want)
        # pixels inside the image equal the patch; the rest of the patch is the released zero padding
        np.testing.assert_array_equal(shown, want_np[: shown.shape[0], : shown.shape[1]])
        assert not want_np[shown.shape[0]:].any() and not want_np[:, shown.shape[1]:].any()
        np.testing.assert_array_equal(to_numpy_patch(crop_box(source, drawn.box)), want_np)
        checked.add((drawn.panel, drawn.names))
    k = mg.k
    assert ("lr", "query") in checked and ("query_context", "query") in checked
    assert sum(1 for p, n in checked if n == "neighbour") == 1 + k  # the son panel and k context panels
    assert len([b for b in mf.boxes if b.names == "hr-source"]) == k
    if where == "last":  # the border case really holds padding
        b = det.query_boxes[0]
        assert int(b[0] + b[2]) > lr.shape[-2] or int(b[1] + b[3]) > lr.shape[-1]


def test_edges_join_the_query_to_each_neighbour():
    lr = _lr(40, 44, 2)
    mg = search_graph(lr, 2, k=5, window=8)
    det = graphagg_details(mg, [123])
    mf = match_figure(lr[0], mg.son[0], det)
    assert sorted(r for r, _ in mf.edges) == list(range(5))
    qt, ql, qh, qw = (int(v) for v in det.query_boxes[0])
    for r, con in mf.edges:
        assert con.xy1 == (ql + (qw - 1) / 2, qt + (qh - 1) / 2)
        st, sl, sh, sw = (int(v) for v in det.son_boxes[0, r])
        assert con.xy2 == (sl + (sw - 1) / 2, st + (sh - 1) / 2)
        assert con.coords1 == mf.axes["lr"].transData and con.coords2 == mf.axes["son"].transData
    colours = {r: con.get_edgecolor() for r, con in mf.edges}  # nearest = low end of the colormap
    assert colours[0] != colours[4]


def test_patch_panels_show_the_details():
    lr = _lr(38, 40, 2)
    mg = search_graph(lr, 2, k=3)
    det = graphagg_details(mg, [7, 50])
    gt = torch.rand(3, 6, 6)
    mf = match_figure(lr[0], mg.son[0], det, query=1, hr_patch=gt)
    arr = {key: np.asarray(im.get_array()) for key, im in mf.images.items()}
    np.testing.assert_array_equal(arr["ground_truth"], to_numpy_patch(gt))
    np.testing.assert_array_equal(arr["aggregate"], to_numpy_patch(det.aggregate[1]))
    for r in range(3):
        np.testing.assert_array_equal(arr[f"hr_raw_{r}"], to_numpy_patch(det.hr_patches[1, r]))
        np.testing.assert_array_equal(arr[f"hr_adapn_{r}"], to_numpy_patch(det.hr_patches_adapn[1, r]))
    assert "recurrence" not in mf.images


def test_grey_image_renders_and_saves(tmp_path):
    lr = _lr(30, 34, 2)[:, :1]
    mg = search_graph(lr, 2, k=3, cross_scale=False)
    det = graphagg_details(mg, [10])
    mf = match_figure(lr[0], mg.son[0], det, recurrence=recurrence_from_graph(mg), title="grey")
    assert mf.images["lr"].get_array().ndim == 2
    assert not [b for b in mf.boxes if b.names == "hr-source"]  # same-scale HR patches are bicubic ×s
    path = tmp_path / "m.png"
    mf.figure.savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_arguments():
    lr = _lr(30, 30, 2)
    mg = search_graph(lr, 2, k=3)
    det = graphagg_details(mg, [0])
    with pytest.raises(ValueError, match="query"):
        match_figure(lr[0], mg.son[0], det, query=1)
    with pytest.raises(ValueError, match="C×H×W"):
        match_figure(lr, mg.son[0], det)
