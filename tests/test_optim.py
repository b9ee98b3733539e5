"""Optimiser groups, lr scaling, LARS against its formula, warmup + cosine."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ssl_core.optimizer_args import OptimizerArgs
from ssl_core.schedules import warmup_cosine
from ssl_core.train.optim import (
    LARS,
    build_optimizer,
    build_scheduler,
    parameter_groups,
    scaled_lr,
    warmup_steps,
)


def small_net():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))


def test_no_weight_decay_on_biases_and_norms():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2), nn.LayerNorm(2))
    decay, no_decay = parameter_groups(net, 1e-4)
    assert {id(p) for p in decay["params"]} == {id(net[0].weight), id(net[2].weight)}
    assert {id(p) for p in no_decay["params"]} == {
        id(net[0].bias),
        id(net[1].weight),
        id(net[1].bias),
        id(net[2].bias),
        id(net[3].weight),
        id(net[3].bias),
    }
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (1e-4, 0.0)


def test_linear_lr_scaling_and_choice_of_optimizer():
    args = OptimizerArgs(lr=0.3)
    assert scaled_lr(args, 4096) == pytest.approx(4.8)
    assert scaled_lr(args, 64) == pytest.approx(0.075)
    net = nn.Linear(3, 2)
    sgd = build_optimizer(net, args, 512)
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["lr"] == pytest.approx(0.6)
    assert sgd.param_groups[0]["momentum"] == 0.9
    assert isinstance(build_optimizer(net, OptimizerArgs(name="adamw"), 256), torch.optim.AdamW)
    assert isinstance(build_optimizer(net, OptimizerArgs(name="lars"), 256), LARS)


def test_lars_step_matches_its_formula():
    torch.manual_seed(0)
    weight = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(5, dtype=torch.float64, requires_grad=True)
    grad_w, grad_b = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    w0, b0 = weight.detach().clone(), bias.detach().clone()
    optimizer = LARS(
        [
            {"params": [weight], "weight_decay": 0.01, "lars_exclude": False},
            {"params": [bias], "weight_decay": 0.0, "lars_exclude": True},
        ],
        lr=0.5,
        momentum=0.9,
        trust_coefficient=0.02,
    )
    weight.grad, bias.grad = grad_w.clone(), grad_b.clone()
    optimizer.step()
    g = grad_w + 0.01 * w0
    trust = 0.02 * w0.norm() / g.norm()
    torch.testing.assert_close(weight.detach(), w0 - 0.5 * trust * g)
    torch.testing.assert_close(bias.detach(), b0 - 0.5 * grad_b)  # excluded: plain SGD


def test_warmup_is_ten_epochs_or_a_tenth_of_the_run():
    args = OptimizerArgs(warmup_epochs=10)
    assert warmup_steps(args, steps_per_epoch=100, total_steps=100 * 200) == 1000
    assert warmup_steps(args, steps_per_epoch=100, total_steps=100 * 50) == 500


def test_schedule_shape_per_step():
    total, warmup = 100, 10
    factors = [warmup_cosine(s, total, warmup) for s in range(total)]
    assert factors[:3] == pytest.approx([0.1, 0.2, 0.3])
    assert factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0)
    assert factors[55] == pytest.approx(0.5 * (1 + math.cos(math.pi * 45 / 90)))
    assert all(a >= b for a, b in zip(factors[10:], factors[11:], strict=False))
    assert warmup_cosine(total, total, warmup) == pytest.approx(0.0)

    net = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(net.parameters(), lr=2.0)
    scheduler = build_scheduler(optimizer, total, warmup)
    seen = []
    for _ in range(total):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([2.0 * f for f in factors])
