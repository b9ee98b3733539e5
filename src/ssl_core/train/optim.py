"""Optimisers (SGD, LARS, AdamW), parameter groups, linear lr scaling, and warmup + cosine
per step."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from ssl_core.optimizer_args import OptimizerArgs
from ssl_core.schedules import warmup_cosine


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weight matrices and kernels only: biases and normalisation parameters
    (every parameter of one dimension) get none, and LARS leaves them unadapted."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay, "lars_exclude": False},
        {"params": no_decay, "weight_decay": 0.0, "lars_exclude": True},
    ]


def scaled_lr(args: OptimizerArgs, global_batch: int) -> float:
    """Linear scaling rule: lr × global_batch / reference batch."""
    return args.lr * global_batch / args.lr_reference_batch


def method_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """The module's own groups (``param_groups``) where it gives them, else the core's rule.
    Every trainable parameter must be in exactly one group: an optimiser that silently
    skips one would leave it untrained."""
    choose = getattr(module, "param_groups", None)
    groups = choose(weight_decay) if choose is not None else None
    if groups is None:
        return parameter_groups(module, weight_decay)
    names = {id(p): name for name, p in module.named_parameters() if p.requires_grad}
    seen: set[int] = set()
    filled = []
    for group in groups:
        params = list(group["params"])
        for param in params:
            if id(param) in seen:
                raise ValueError(
                    f"{type(module).__name__}.param_groups() puts parameter "
                    f"'{names.get(id(param), '?')}' in two groups."
                )
            seen.add(id(param))
        filled.append(
            {"weight_decay": weight_decay, "lars_exclude": False, **group, "params": params}
        )
    missing = [name for key, name in names.items() if key not in seen]
    if missing:
        raise ValueError(
            f"{type(module).__name__}.param_groups() leaves out {len(missing)} trainable "
            f"parameter(s), e.g. {', '.join(missing[:3])}: put every parameter with "
            f"requires_grad in a group, or freeze it."
        )
    return filled


def build_optimizer(model: nn.Module, args: OptimizerArgs, global_batch: int) -> Optimizer:
    groups = method_groups(model, args.weight_decay)
    lr = scaled_lr(args, global_batch)
    if args.name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=args.momentum)
    if args.name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=args.betas)
    return LARS(
        groups, lr=lr, momentum=args.momentum, trust_coefficient=args.lars_trust_coefficient
    )


class LARS(Optimizer):
    """Layer-wise adaptive rate scaling (You et al. 2017) on SGD with momentum.

    Each parameter's update is scaled by ``trust_coefficient × ‖w‖ / ‖g + wd·w‖``; groups
    marked ``lars_exclude`` (biases, norms) use the plain SGD update.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 0.001,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            trust_coefficient=trust_coefficient,
            lars_exclude=False,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                if group["weight_decay"]:
                    grad = grad.add(param, alpha=group["weight_decay"])
                if not group["lars_exclude"]:
                    param_norm, grad_norm = torch.norm(param), torch.norm(grad)
                    trust = torch.where(
                        (param_norm > 0) & (grad_norm > 0),
                        group["trust_coefficient"] * param_norm / grad_norm,
                        torch.ones_like(param_norm),
                    )
                    grad = grad.mul(trust)
                state = self.state[param]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.clone(grad).detach()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(grad)
                param.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss


def warmup_steps(args: OptimizerArgs, steps_per_epoch: int, total_steps: int) -> int:
    """``warmup_epochs`` or a tenth of the run, whichever is less."""
    return int(min(args.warmup_epochs * steps_per_epoch, total_steps / 10))


def build_scheduler(optimizer: Optimizer, total_steps: int, warmup: int) -> LambdaLR:
    return LambdaLR(optimizer, lambda step: warmup_cosine(step, total_steps, warmup))
