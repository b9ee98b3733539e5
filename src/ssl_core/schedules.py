"""Schedules over the run, as plain functions of the step (torch-free).

A value computed from the step alone needs no state in the checkpoint: after a resume it
continues exactly where the interrupted run was.
"""

from __future__ import annotations

import math


def cosine_schedule(step: int, total_steps: int, start: float, end: float) -> float:
    """From ``start`` at step 0 to ``end`` at ``total_steps``, along half a cosine.

    BYOL's momentum: ``cosine_schedule(step, total, 0.99, 1.0)`` is the paper's
    τ = 1 − (1 − τ_base)·(cos(πk/K) + 1)/2. Steps past the end stay at ``end``.
    """
    progress = min(1.0, max(0.0, step / max(1, total_steps)))
    return end - (end - start) * (math.cos(math.pi * progress) + 1.0) / 2.0


def linear_warmup(step: int, warmup_steps: int, start: float, end: float) -> float:
    """From ``start`` at step 0 to ``end`` at ``warmup_steps``, then ``end``."""
    if step >= warmup_steps:
        return end
    return start + (end - start) * step / warmup_steps


def warmup_cosine(step: int, total_steps: int, warmup_steps: int) -> float:
    """The learning-rate factor of step ``step``: linear up to 1 over ``warmup_steps``
    (the first step already takes 1/warmup of it), then a cosine down to 0."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    return cosine_schedule(step - warmup_steps, total_steps - warmup_steps, 1.0, 0.0)
