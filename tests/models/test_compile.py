"""``torch.compile`` of IGNN (the trainer's ``compile`` option): the graph is built eagerly, the rest compiled."""

import math

import pytest
import torch

from ignn_lab.lab.bench_train import step_fn


@pytest.mark.slow
def test_compiled_ignn_lite_trains_like_eager():
    """Training steps of the lite recipe (bf16 autocast, 16 patches of 48²) compiled: without the graph kept out of
    the compiled region, inductor's kernels index out of bounds and the process aborts."""
    gen = torch.Generator().manual_seed(0)
    lr, hr = torch.rand(16, 3, 48, 48, generator=gen), torch.rand(16, 3, 96, 96, generator=gen)
    eager = step_fn("ignn-lite", "bf16", lr, hr)
    compiled = step_fn("ignn-lite", "bf16-compile", lr, hr)
    first_eager, first_compiled = eager(), compiled()
    assert first_compiled == pytest.approx(first_eager, rel=2e-2)
    losses = [compiled() for _ in range(3)]
    assert all(math.isfinite(x) for x in losses)
