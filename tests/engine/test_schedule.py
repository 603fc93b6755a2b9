"""Learning-rate schedules against torch's own schedulers (an independent implementation)."""

import math

import pytest
import torch

from ignn_lab.engine.schedule import learning_rate


def _torch_lrs(make, n, lr):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = make(opt)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("first,mult", [(7, 1), (5, 2), (40, 1)])
def test_cosine_after_warmup_matches_torch_warm_restarts(first, mult):
    warm, n, lr, eta = 4, 60, 3e-4, 1e-6
    ref = _torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=first, T_mult=mult,
                                                                                   eta_min=eta), n, lr)
    ours = [learning_rate(warm + t, lr=lr, steps=warm + n, schedule="cosine", warmup_steps=warm,
                          cycle_steps=first, cycle_mult=mult, min_lr=eta) for t in range(n)]
    assert ours == pytest.approx(ref, rel=1e-9, abs=1e-15)


def test_cosine_single_cycle_ends_at_min_lr_and_warmup_is_linear():
    kw = dict(lr=1e-3, steps=110, schedule="cosine", warmup_steps=10, min_lr=1e-6)
    assert [learning_rate(s, **kw) for s in range(10)] == pytest.approx([1e-3 * (s + 1) / 10 for s in range(10)])
    assert learning_rate(10, **kw) == pytest.approx(1e-3)
    assert learning_rate(109, **kw) == pytest.approx(1e-6 + 0.5 * (1e-3 - 1e-6) * (1 + math.cos(math.pi * 99 / 100)))


def test_step_schedule_matches_torch_steplr():
    ref = _torch_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=7, gamma=0.5), 40, 1e-4)
    ours = [learning_rate(t, lr=1e-4, steps=40, schedule="step", step_size=7, gamma=0.5) for t in range(40)]
    assert ours == pytest.approx(ref, rel=1e-12)


def test_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="cosine, step, constant"):
        learning_rate(0, lr=1.0, steps=1, schedule="linear")
