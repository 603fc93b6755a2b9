"""Search windows against the spec's formulas written as plain loops (spec §4, index_neighbours)."""

import pytest
import torch

from ignn_lab.graph.window import effective_window, window_starts, window_table


def _loop_table(qgrid, sgrid, s, g, centering, order):
    (m1, m2), (n1, n2) = qgrid, sgrid
    rows = []
    for i in range(m1):
        for j in range(m2):
            if centering == "released":
                r0, c0 = i // 2 - s // g, j // 2 - s // g
            else:
                r0, c0 = i // g - s // 2, j // g - s // 2
            r0, c0 = min(max(r0, 0), n1 - s), min(max(c0, 0), n2 - s)
            if order == "column":  # entry t: column offset t // s, row offset t % s
                rows.append([(r0 + t % s) * n2 + (c0 + t // s) for t in range(s * s)])
            else:
                rows.append([(r0 + t // s) * n2 + (c0 + t % s) for t in range(s * s)])
    return torch.tensor(rows, dtype=torch.int64)


@pytest.mark.parametrize("order", ["row", "column"])
@pytest.mark.parametrize("centering", ["corrected", "released"])
@pytest.mark.parametrize("qgrid,sgrid,s,g", [((22, 31), (11, 15), 8, 2), ((22, 29), (7, 9), 5, 3),
                                             ((20, 29), (10, 14), 10, 2), ((9, 7), (9, 7), 4, 1),
                                             ((13, 12), (4, 4), 4, 3)])
def test_window_table_matches_loops(qgrid, sgrid, s, g, centering, order):
    got = window_table(qgrid, sgrid, s, g, centering, order=order)
    assert got.dtype == torch.int64 and got.shape == (qgrid[0] * qgrid[1], s * s)
    assert torch.equal(got, _loop_table(qgrid, sgrid, s, g, centering, order))


def test_row_order_is_increasing_son_index():
    t = window_table((22, 31), (11, 15), 8, 2)
    assert bool((t[:, 1:] > t[:, :-1]).all())


def test_centerings_coincide_for_g2_and_differ_for_g3():
    assert torch.equal(window_starts(40, 20, 8, 2, "corrected"), window_starts(40, 20, 8, 2, "released"))
    assert not torch.equal(window_starts(40, 14, 5, 3, "corrected"), window_starts(40, 14, 5, 3, "released"))


def test_window_starts_monotone_and_clamped():
    for centering in ("corrected", "released"):
        for g in (1, 2, 3):
            st = window_starts(50, 20, 7, g, centering)
            assert bool((st[1:] >= st[:-1]).all())
            assert int(st.min()) >= 0 and int(st.max()) <= 20 - 7


@pytest.mark.parametrize("window,grid,want", [
    (None, (5, 5), None), (30, (11, 15), None), (15, (11, 15), None), (14, (11, 15), 11), (8, (11, 15), 8),
    (12, (10, 14), 10), (1, (3, 4), 1)])
def test_effective_window(window, grid, want):
    assert effective_window(window, grid) == want


def test_bad_arguments():
    with pytest.raises(ValueError, match="positive"):
        effective_window(0, (4, 4))
    with pytest.raises(ValueError, match="centering"):
        window_starts(4, 4, 2, 2, "middle")
    with pytest.raises(ValueError, match="order"):
        window_table((4, 4), (4, 4), 2, 2, order="diagonal")
