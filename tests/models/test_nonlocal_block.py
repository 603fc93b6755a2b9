"""The dense non-local block against an explicit softmax attention."""

import pytest
import torch

from ignn_lab.models.nonlocal_block import NonLocalBlock


def test_matches_explicit_attention():
    torch.manual_seed(0)
    block = NonLocalBlock(6).double()
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64)
    theta = block.theta(x).flatten(2)  # B×C'×N
    phi = block.phi(x).flatten(2)
    g = block.g(x).flatten(2)
    att = torch.softmax(theta.transpose(1, 2) @ phi, dim=-1)  # B×N×N, rows sum to 1
    y = (att @ g.transpose(1, 2)).transpose(1, 2).reshape(2, 3, 5, 7)
    want = x + block.w(y)
    torch.testing.assert_close(block(x), want, rtol=1e-10, atol=1e-10)


def _explicit(block, x, region):
    """Each cell of a top-left-anchored grid attends within itself, by explicit softmax over the cell's pixels."""
    out = torch.empty(x.shape[0], block.g.out_channels, *x.shape[2:], dtype=x.dtype)
    for y0 in range(0, x.shape[2], region):
        for x0 in range(0, x.shape[3], region):
            cell = x[:, :, y0:y0 + region, x0:x0 + region]
            t, p, g = (m(cell).flatten(2) for m in (block.theta, block.phi, block.g))
            att = torch.softmax(t.transpose(1, 2) @ p, dim=-1)
            out[:, :, y0:y0 + region, x0:x0 + region] = (att @ g.transpose(1, 2)).transpose(1, 2).reshape(
                x.shape[0], -1, *cell.shape[2:])
    return x + block.w(out)


@pytest.mark.parametrize("size", [(8, 12), (11, 7), (3, 5), (4, 4)])
def test_region_level_matches_explicit_cells(size):
    """Region 4 on sizes that are, and are not, multiples of it (remainder cells), and on one smaller cell."""
    torch.manual_seed(1)
    block = NonLocalBlock(6, region=4).double()
    x = torch.randn(2, 6, *size, dtype=torch.float64, requires_grad=True)
    got = block(x)
    torch.testing.assert_close(got, _explicit(block, x, 4), rtol=1e-10, atol=1e-10)
    got.sum().backward()  # trains: the cells are stitched back differentiably
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_region_covering_the_input_is_dense():
    torch.manual_seed(2)
    x = torch.randn(1, 6, 9, 10, dtype=torch.float64)
    dense = NonLocalBlock(6).double()
    covering = NonLocalBlock(6, region=10).double()
    covering.load_state_dict(dense.state_dict())
    torch.testing.assert_close(covering(x), dense(x), rtol=0, atol=0)
    smaller = NonLocalBlock(6, region=5).double()
    smaller.load_state_dict(dense.state_dict())
    assert not torch.allclose(smaller(x), dense(x))
