"""One optimiser step, with the method's hooks around it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from ssl_core.config import ResolvedConfig
from ssl_core.errors import FirstStepFailed
from ssl_core.train.metrics import split_output
from ssl_core.train.model import BuiltModel
from ssl_core.train.precision import autocast
from ssl_core.train.settle import size_key


@dataclass
class StepResult:
    loss: Tensor  # still on the device: reading it would wait for the step to finish
    metrics: Mapping[str, Tensor | float]
    lr: float


class TrainStep:
    """``step(index, views)``: hooks, forward under autocast, backward, clipping, update.

    The order, which docs/plugins.md documents: on_before_forward, forward, backward,
    gradient clipping, on_before_optimizer_step, optimiser and lr-schedule step,
    on_after_optimizer_step.
    """

    def __init__(
        self,
        built: BuiltModel,
        optimizer: Optimizer,
        scheduler: LRScheduler,
        resolved: ResolvedConfig,
        precision: str,
        device: torch.device,
    ) -> None:
        self.built, self.optimizer, self.scheduler = built, optimizer, scheduler
        self.resolved, self.precision, self.device = resolved, precision, device
        self.clip = resolved.optim_args.gradient_clip_norm
        self.first = True

    def __call__(self, step: int, views: list[Tensor]) -> StepResult:
        life = self.built.lifecycle
        lr = float(self.scheduler.get_last_lr()[0])
        self.optimizer.zero_grad(set_to_none=True)
        life.on_before_forward(step)
        if self.first:
            loss, metrics = self._first_forward_backward(views)
            self.first = False
        else:
            loss, metrics = self._forward_backward(views)
        if self.clip is not None:
            nn.utils.clip_grad_norm_(self.built.module.parameters(), self.clip)
        life.on_before_optimizer_step(step, self.optimizer)
        self.optimizer.step()
        self.scheduler.step()
        life.on_after_optimizer_step(step)
        return StepResult(loss, metrics, lr)

    def _forward_backward(self, views: list[Tensor]) -> tuple[Tensor, Mapping[str, Tensor | float]]:
        with autocast(self.precision, self.device):
            loss, metrics = split_output(self.built.model(views))
        loss.backward()
        return loss, metrics

    def _first_forward_backward(
        self, views: list[Tensor]
    ) -> tuple[Tensor, Mapping[str, Tensor | float]]:
        """Where a model that cannot take these images fails (and torch.compile compiles):
        say so in one message instead of a traceback from deep inside the model."""
        try:
            return self._forward_backward(views)
        except (RuntimeError, ValueError, AssertionError, TypeError) as exc:
            args = self.resolved.args
            shape = "×".join(str(d) for d in views[0].shape[1:])
            compiled = (
                " It ran under torch.compile (compile=True): rerun without it to see whether "
                "the compiler or the model is at fault."
                if args.compile
                else ""
            )
            # The cause may as well be the method's own bug: name its type and keep its
            # traceback (the loop appends it to train.log).
            log = Path(args.out) / "train.log"
            raise FirstStepFailed(
                f"{args.model} failed on the first batch of views ({shape}): "
                f"{type(exc).__name__}: {str(exc).strip().rstrip('.!')}. Check that the model "
                f"accepts this image size (transform_args.image_size; ViTs, for example, need "
                f"{size_key(args.model)} to match) and the method's arguments, then rerun "
                f"with --overwrite.{compiled} The full traceback is in {log}."
            ) from exc
