"""The module a method builds, and the hooks the training loop calls on it.

Subclassing ``MethodModule`` is optional: the loop calls each hook only where the module
has it, so a 0.1 module (an ``nn.Module`` with a ``backbone`` whose ``forward`` returns the
loss) trains unchanged. ``docs/plugins.md`` shows the order of the calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from torch import Tensor, nn

if TYPE_CHECKING:
    from torch.optim import Optimizer

    from ssl_core.run_info import RunInfo


class StepOutput(NamedTuple):
    """What ``forward`` may return instead of the bare loss: the loss to minimise and
    values to log beside it (scalar tensors or floats, the same names every step). The
    core logs the mean over all processes to metrics.jsonl and TensorBoard."""

    loss: Tensor
    metrics: Mapping[str, Tensor | float] = {}


RESERVED_METRICS = frozenset({"epoch", "step", "loss", "lr", "images_per_second"})


class MethodModule(nn.Module):
    """Base for a method's trainable module; every hook has a default that does nothing.

    Anything a hook changes must live in parameters, buffers or ``get_extra_state``: that
    is what the checkpoint holds, so a resumed run continues bit for bit.
    """

    backbone: nn.Module

    def forward(self, views: list[Tensor]) -> Tensor | StepOutput:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward(views)")

    def on_train_start(self, run: RunInfo) -> None:
        """Once per process before the first step, also when resuming (after the
        checkpoint is loaded, with ``run.start_step`` set)."""

    def on_before_forward(self, step: int) -> None:
        """Before the forward of step ``step`` (from 0, over the whole run)."""

    def on_before_optimizer_step(self, step: int, optimizer: Optimizer) -> None:
        """After backward (and gradient clipping), before the optimiser's update: set a
        weight-decay schedule in ``optimizer.param_groups``, or drop a frozen layer's
        gradients (``param.grad = None``)."""

    def on_after_optimizer_step(self, step: int) -> None:
        """After the optimiser's update of step ``step``: momentum (EMA) updates."""

    def on_epoch_end(self, epoch: int) -> None:
        """After the last step of epoch ``epoch`` (from 0), before its checkpoint."""

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]] | None:
        """The optimiser's parameter groups, or None for the core's rule (``weight_decay``
        on weight matrices and kernels; none, and no LARS adaptation, on biases and norms).
        A group may set ``weight_decay`` and ``lars_exclude``; every trainable parameter
        must be in exactly one group."""
        return None

    def exported_backbone(self) -> nn.Module:
        """The network written to ``exported_models/``: by default ``self.backbone``.
        Methods with a teacher may export it instead."""
        return self.backbone
