"""Learning-rate schedules as pure functions of the step (resuming needs nothing but the step)."""

from __future__ import annotations

import math

__all__ = ["learning_rate"]


def _cosine(t: int, lr: float, min_lr: float, first: int, mult: int) -> float:
    """Cosine annealing with warm restarts (SGDR): cycles of ``first``, ``first·mult``, … steps."""
    length = first
    while t >= length:
        t -= length
        length *= mult
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * t / length))


def learning_rate(step: int, *, lr: float, steps: int, schedule: str, warmup_steps: int = 0,
                  cycle_steps: int | None = None, cycle_mult: int = 1, min_lr: float = 0.0,
                  step_size: int = 1, gamma: float = 0.5) -> float:
    """The learning rate of optimiser step ``step`` (0-based).

    * ``constant``: ``lr``.
    * ``step``: linear warm-up, then ``lr · gamma^⌊(step − warmup) / step_size⌋``.
    * ``cosine``: linear warm-up from 0, then cosine annealing from ``lr`` to ``min_lr`` with warm restarts:
      the first cycle has ``cycle_steps`` steps (None: all the steps after the warm-up), each next one
      ``cycle_mult`` times as many.
    """
    if schedule == "constant":
        return lr
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    t = step - warmup_steps
    if schedule == "step":
        return lr * gamma ** (t // step_size)
    if schedule == "cosine":
        first = cycle_steps or max(1, steps - warmup_steps)
        return _cosine(t, lr, min_lr, first, cycle_mult)
    raise ValueError(f"unknown schedule {schedule!r}; accepted: cosine, step, constant")
