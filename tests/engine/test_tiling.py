"""Tile layout and the live-bytes meter, checked against brute-force enumeration and known allocations."""

from __future__ import annotations

import pytest
import torch

from ignn_lab.engine.tiling import LiveBytes, max_square_tile, peak_activation_bytes, tile_spans


@pytest.mark.parametrize("length,tile,overlap,align", [
    (100, 40, 8, 4), (101, 40, 8, 4), (97, 36, 6, 12), (500, 128, 32, 4), (41, 40, 8, 4), (7, 40, 8, 4),
    (300, 60, 0, 1), (123, 50, 20, 6),
])
def test_spans_partition_and_keep_context(length, tile, overlap, align):
    spans = tile_spans(length, tile, overlap, align)
    covered = torch.zeros(length, dtype=torch.int64)
    for sp in spans:
        assert sp.start % align == 0
        assert 0 <= sp.start <= sp.keep_start < sp.keep_stop <= sp.stop <= length
        covered[sp.keep_start: sp.keep_stop] += 1
        if length > tile:
            assert tile <= sp.stop - sp.start < tile + align
        # an inner side keeps at least `overlap` pixels of context to the kept part
        if sp.start > 0:
            assert sp.keep_start - sp.start >= overlap
        if sp.stop < length:
            assert sp.stop - sp.keep_stop >= overlap
    assert torch.all(covered == 1)
    assert spans[0].start == 0 and spans[-1].stop == length


def test_single_tile_when_it_fits():
    assert len(tile_spans(40, 40, 8, 4)) == 1
    assert len(tile_spans(41, 40, 8, 4)) == 1  # the last tile may be up to align-1 longer than `tile`
    assert len(tile_spans(45, 40, 8, 4)) == 2


def test_spans_reject_bad_arguments():
    with pytest.raises(ValueError, match="overlap"):
        tile_spans(100, 20, 10, 4)
    with pytest.raises(ValueError, match="tile must be an int"):
        tile_spans(100, 0, 0, 1)
    with pytest.raises(ValueError, match="align"):
        tile_spans(100, 10, 0, 0)


def test_live_bytes_counts_known_allocations():
    def fn():
        a = torch.empty(1000)  # 4000 B
        b = torch.empty(500)  # 2000 B
        del a
        c = torch.empty(3000)  # 12000 B, with b alive: 14000 B
        v = c.view(-1)  # a view adds nothing
        return b, v

    assert peak_activation_bytes(fn) == 14000
    w = torch.empty(10_000)  # allocated outside: not counted
    with LiveBytes() as m:
        y = w + 1
        del y
    assert m.peak == 40_000 and m.current == 0


def test_max_square_tile():
    assert max_square_tile(4.0, 4.0 * 100 * 100, 4) == 96  # (96 + 4)² · 4 = budget
    assert max_square_tile(4.0, 10.0, 4) == 4  # never below one alignment step
