"""im2patch / im2patch_rows / patch2im against plain Python loops (spec §2)."""

import pytest
import torch
import torch.nn.functional as F

from ignn_lab.graph.patches import calc_padding, grid_size, im2patch, im2patch_rows, patch2im
from tests.graph.support import loop_im2patch


def _loop_patch2im(cols, grid, P, S, pads):
    """Each patch added at (row·S, col·S), divided by the cover count, pads cropped."""
    B, CPP, M = cols.shape
    C = CPP // (P * P)
    gh, gw = grid
    hh, ww = (gh - 1) * S + P, (gw - 1) * S + P
    acc = torch.zeros(B, C, hh, ww, dtype=cols.dtype)
    cnt = torch.zeros(hh, ww, dtype=cols.dtype)
    for i in range(gh):
        for j in range(gw):
            acc[:, :, i * S: i * S + P, j * S: j * S + P] += cols[:, :, i * gw + j].reshape(B, C, P, P)
            cnt[i * S: i * S + P, j * S: j * S + P] += 1
    top, bottom, left, right = pads
    return (acc / cnt)[:, :, top: hh - bottom, left: ww - right]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape,p,t", [((2, 3, 9, 12), 3, 2), ((1, 4, 10, 7), 3, 2), ((3, 2, 8, 8), 3, 2),
                                       ((1, 3, 11, 13), 5, 4), ((2, 1, 7, 9), 3, 1), ((1, 2, 9, 6), 2, 3)])
def test_im2patch_matches_loops(shape, p, t, dtype):
    x = torch.randn(shape, dtype=dtype)
    got, grid, pads = im2patch(x, p, t)
    want, wgrid, wpads = loop_im2patch(x, p, t)
    assert (grid, pads) == (wgrid, wpads)
    assert got.dtype == dtype
    assert torch.equal(got, want)
    assert grid == (grid_size(shape[2], p, t), grid_size(shape[3], p, t))


@pytest.mark.parametrize("length", [4, 5, 6, 7, 44, 45])
def test_released_padding_rule(length):
    # even length: one zero row at the bottom; odd: none; grid = floor(L/2)
    assert calc_padding(length) == ((0, 1) if length % 2 == 0 else (0, 0))
    assert grid_size(length) == length // 2


@pytest.mark.parametrize("columns", [False, True])
@pytest.mark.parametrize("shape,p,t", [((2, 3, 9, 12), 3, 2), ((1, 2, 10, 7), 3, 2), ((1, 3, 13, 11), 5, 4),
                                       ((2, 2, 7, 9), 3, 1)])
def test_im2patch_rows_equals_rows_of_im2patch(shape, p, t, columns):
    x = torch.randn(shape, dtype=torch.float64)
    full, (gh, gw), _ = im2patch(x, p, t)
    for a, b in [(0, gh), (0, 1), (1, gh), (gh - 1, gh)]:
        got = im2patch_rows(x, a, b, p, t, columns=columns)
        want = full[:, a * gw: b * gw]
        assert got.is_contiguous()
        assert torch.equal(got.transpose(1, 2) if columns else got, want)


def test_im2patch_rows_rejects_bad_ranges():
    x = torch.zeros(1, 1, 8, 8)
    with pytest.raises(ValueError, match="outside the grid"):
        im2patch_rows(x, 2, 9)
    with pytest.raises(ValueError, match="B×C×H×W"):
        im2patch_rows(x[0], 0, 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape,P,S", [((2, 3, 4, 5), 3, 2), ((1, 2, 6, 3), 6, 4), ((1, 1, 5, 5), 9, 6),
                                       ((2, 2, 3, 4), 4, 2)])
def test_patch2im_overlap_average_matches_loops(shape, P, S, dtype):
    B, C, gh, gw = shape
    cols = torch.randn(B, C * P * P, gh * gw, dtype=dtype)
    pads = (0, 1, 0, 1) if P % 2 == 0 else (0, S // 2, 0, 0)
    got = patch2im(cols, (gh, gw), P, S, pads)
    assert torch.allclose(got, _loop_patch2im(cols, (gh, gw), P, S, pads), rtol=0, atol=1e-12 if dtype ==
                          torch.float64 else 1e-6)
    assert got.dtype == dtype


@pytest.mark.parametrize("g", [2, 3])
@pytest.mark.parametrize("hw", [(9, 12), (10, 7), (8, 8)])
def test_roundtrip_at_hr_with_g_times_pads(g, hw):
    """The g×-larger HR patches of the LR grid (P = 3g, S = 2g, pads g·LR pads) fold back to the image."""
    _, grid, pads = im2patch(torch.zeros(1, 1, *hw), 3, 2)
    hr = torch.randn(2, 3, g * hw[0], g * hw[1], dtype=torch.float64)
    top, bottom, left, right = (g * v for v in pads)
    hr_cols = F.unfold(F.pad(hr, (left, right, top, bottom)), 3 * g, stride=2 * g)
    assert hr_cols.shape[-1] == grid[0] * grid[1]
    back = patch2im(hr_cols, grid, 3 * g, 2 * g, (top, bottom, left, right))
    assert back.shape == hr.shape
    torch.testing.assert_close(back, hr, rtol=0, atol=1e-12)
    torch.testing.assert_close(back, _loop_patch2im(hr_cols, grid, 3 * g, 2 * g, (top, bottom, left, right)),
                               rtol=0, atol=1e-12)


def test_patch2im_rejects_wrong_count():
    with pytest.raises(ValueError, match="do not fill"):
        patch2im(torch.zeros(1, 9, 5), (2, 3), 3, 2, (0, 0, 0, 0))


def test_im2patch_rejects_bad_input():
    with pytest.raises(ValueError, match="B×C×H×W"):
        im2patch(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="smaller than the patch size"):
        im2patch(torch.zeros(1, 1, 2, 8))
