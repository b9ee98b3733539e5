"""Per-step metrics: the loss and a method's own values, kept on the device between
flushes, averaged over all processes, checked for NaN/inf and turned into rows."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ssl_core.distributed import all_reduce_mean
from ssl_core.errors import NonFiniteLoss
from ssl_core.method_module import RESERVED_METRICS, StepOutput


def split_output(output: Any) -> tuple[Tensor, Mapping[str, Tensor | float]]:
    """A forward's result as (loss, metrics): a ``StepOutput``, or a 0.1 method's bare loss."""
    if isinstance(output, StepOutput):
        return output.loss, output.metrics
    if isinstance(output, Tensor):
        return output, {}
    raise TypeError(
        f"the method's forward returned {type(output).__name__}; expected the loss tensor or "
        f"ssl_core.StepOutput(loss, metrics)."
    )


@dataclass
class _Step:
    step: int
    lr: float
    values: Tensor  # the loss, then the tensor metrics, on the device
    tensor_names: tuple[str, ...]
    floats: dict[str, float]  # metrics given as Python numbers
    names: tuple[str, ...]  # every metric, in the method's order


class StepWindow:
    """Steps between two flushes. A flush costs one all-reduce and one host sync for the
    whole window, so on a GPU the steps in between run without waiting for the host."""

    def __init__(self, batch_size: int, device: torch.device) -> None:
        self.batch_size = batch_size
        self.device = device
        self.steps: list[_Step] = []
        self.start = time.perf_counter()

    def add(self, step: int, loss: Tensor, metrics: Mapping[str, Tensor | float], lr: float):
        clash = RESERVED_METRICS & set(metrics)
        if clash:
            raise ValueError(
                f"the method logs a metric named {sorted(clash)}, which the core writes itself; "
                f"rename it."
            )
        tensors = {k: v for k, v in metrics.items() if isinstance(v, Tensor)}
        values = torch.stack([t.detach().float().reshape(()) for t in (loss, *tensors.values())])
        floats = {k: float(v) for k, v in metrics.items() if not isinstance(v, Tensor)}
        self.steps.append(_Step(step, lr, values, tuple(tensors), floats, tuple(metrics)))

    def flush(
        self, epoch: int, stop_requested: bool = False
    ) -> tuple[list[dict[str, Any]], float, bool]:
        """Metric rows (means over all processes), the seconds the window took, and whether
        any process was asked to stop (so that all stop at this same step); raises
        NonFiniteLoss on every process alike, since they all see the same mean."""
        seconds = time.perf_counter() - self.start
        packed = [s.values for s in self.steps]
        # A method's Python numbers and this process's stop request join the device values
        # for the one all-reduce.
        floats = [v for s in self.steps for v in s.floats.values()]
        packed.append(torch.tensor([*floats, float(stop_requested)]).to(self.device))
        *means, stop = all_reduce_mean(torch.cat(packed)).cpu().tolist()
        rate = len(self.steps) * self.batch_size / max(seconds, 1e-9)
        rows, tensor_at, float_at = [], 0, sum(len(s.values) for s in self.steps)
        for s in self.steps:
            count = len(s.values)
            loss, *tensor_values = means[tensor_at : tensor_at + count]
            tensor_at += count
            float_values = means[float_at : float_at + len(s.floats)]
            float_at += len(s.floats)
            if not math.isfinite(loss):
                raise NonFiniteLoss(
                    f"The loss became {loss} at step {s.step} (epoch {epoch}); training "
                    f"stopped. The last good checkpoint is the one written at the end of the "
                    f"previous epoch, if there was one. Try a lower learning rate "
                    f"(optim_args.lr), gradient clipping (optim_args.gradient_clip_norm) or "
                    f"precision=32-true."
                )
            metrics = {
                **dict(zip(s.tensor_names, tensor_values, strict=True)),
                **dict(zip(s.floats, float_values, strict=True)),
            }
            row = {"epoch": epoch, "step": s.step, "loss": loss, "lr": s.lr}
            row["images_per_second"] = rate
            rows.append(row | {name: metrics[name] for name in s.names})
        self.steps = []
        self.start = time.perf_counter()
        return rows, seconds, stop > 0
