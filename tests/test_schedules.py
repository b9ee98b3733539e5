"""ssl_core.schedules against the published closed forms, written out here independently."""

from __future__ import annotations

import math

import pytest

from ssl_core.schedules import cosine_schedule, linear_warmup, warmup_cosine


def byol_momentum(k: int, total: int, base: float) -> float:
    """BYOL (Grill et al. 2020, §3.2): τ = 1 − (1 − τ_base)·(cos(πk/K) + 1)/2."""
    return 1 - (1 - base) * (math.cos(math.pi * k / total) + 1) / 2


@pytest.mark.parametrize("k", [0, 1, 250, 500, 999, 1000])
def test_cosine_schedule_is_byols_momentum(k):
    assert cosine_schedule(k, 1000, 0.996, 1.0) == pytest.approx(byol_momentum(k, 1000, 0.996))


def test_cosine_schedule_ends_and_stays_at_its_end():
    assert cosine_schedule(0, 1000, 0.996, 1.0) == 0.996
    assert cosine_schedule(500, 1000, 0.996, 1.0) == pytest.approx(0.998)
    assert cosine_schedule(1000, 1000, 0.996, 1.0) == 1.0
    assert cosine_schedule(1500, 1000, 0.996, 1.0) == 1.0
    # Decreasing schedules too (DINO's teacher temperature or a weight-decay schedule).
    assert cosine_schedule(0, 10, 0.4, 0.04) == pytest.approx(0.4)
    assert cosine_schedule(5, 10, 0.4, 0.04) == pytest.approx(0.22)
    assert cosine_schedule(10, 10, 0.4, 0.04) == pytest.approx(0.04)


@pytest.mark.parametrize(
    ("step", "expected"),
    [(0, 0.04), (15, 0.04 + (0.07 - 0.04) * 15 / 30), (29, 0.04 + 0.03 * 29 / 30), (30, 0.07)],
)
def test_linear_warmup(step, expected):
    assert linear_warmup(step, 30, 0.04, 0.07) == pytest.approx(expected)
    assert linear_warmup(step + 100, 30, 0.04, 0.07) == 0.07  # then it stays at the end


def learning_rate_factor(step: int, total: int, warmup: int) -> float:
    """Goyal et al. 2017 warmup (reaching 1 at its last step), then SGDR's cosine to 0."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))


@pytest.mark.parametrize(("total", "warmup"), [(100, 10), (100, 0), (37, 5)])
def test_warmup_cosine_is_the_closed_form(total, warmup):
    for step in (0, warmup // 2, max(0, warmup - 1), warmup, (warmup + total) // 2, total - 1):
        expected = learning_rate_factor(step, total, warmup)
        assert warmup_cosine(step, total, warmup) == pytest.approx(expected), step
    assert warmup_cosine(total, total, warmup) == pytest.approx(0.0, abs=1e-12)


def test_warmup_cosine_agrees_with_the_engines_schedule_test():
    """The values tests/test_optim.py checks on the learning rate the engine uses."""
    factors = [warmup_cosine(s, 100, 10) for s in range(100)]
    assert factors[:3] == pytest.approx([0.1, 0.2, 0.3])
    assert factors[9] == factors[10] == pytest.approx(1.0)
    assert factors[55] == pytest.approx(0.5 * (1 + math.cos(math.pi * 45 / 90)))
