"""The dense non-local block against an explicit softmax attention."""

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
