"""The Method interface every pretraining method plugin implements.

A method class is defined in a module that imports no torch: it is registered and listed
without loading the heavy code. ``build`` imports what it needs.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, ClassVar

from ssl_core.args import StrictArgs
from ssl_core.optimizer_args import OptimizerArgs

if TYPE_CHECKING:
    from torch import nn

    from ssl_core.backbones.backbone import Backbone
    from ssl_core.run_info import RunInfo


class Method:
    """A self-supervised method: its schema, its defaults, and how it trains a backbone.

    Subclasses set the class attributes and implement ``build(backbone, run)``, which
    returns the trainable module: an ``nn.Module`` holding the backbone as ``backbone``,
    whose ``forward`` takes the list of augmented views (float tensors N×C×H×W) and
    returns the loss or a ``StepOutput``. It may subclass ``ssl_core.MethodModule`` for the
    lifecycle hooks. The 0.1 form ``build(self, backbone)`` is still accepted.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    args_model: ClassVar[type[StrictArgs]]
    transform: ClassVar[str]
    """Name of the registered transform that makes this method's views."""
    transform_defaults: ClassVar[dict[str, Any]] = {}
    """Overrides of the transform's own defaults for this method (nested dict)."""
    default_epochs: ClassVar[int] = 100
    default_optimizer: ClassVar[OptimizerArgs] = OptimizerArgs()
    sync_batchnorm: ClassVar[bool] = False
    """Convert BatchNorm to SyncBatchNorm when training on several processes."""
    broadcast_buffers: ClassVar[bool] = True
    """False when the module's buffers are rank-local (a queue of this process's keys):
    DDP then does not copy rank 0's buffers to every process before each step."""

    def __init__(self, args: StrictArgs) -> None:
        self.args = args

    def build(self, backbone: Backbone, run: RunInfo) -> nn.Module:
        raise NotImplementedError(f"{type(self).__name__} does not implement build(backbone, run)")

    def resolve_auto(self, run: RunInfo) -> StrictArgs:
        """This method's arguments with each "auto" that depends on the run (images per
        epoch, batch size) replaced by its value: config.json records it and a resume keeps
        it, so a data set that grew since cannot change it. Optional; the default settles
        only what the arguments alone decide (``StrictArgs.resolve_auto``)."""
        return self.args.resolve_auto()

    def check_run(self, run: RunInfo) -> None:
        """Raise ``ssl_core.ConfigError`` for a run this method cannot learn from, e.g. a
        batch too small for its loss; say how to fix it. Optional (the default accepts
        every run). The core calls it once, when the images are counted and before the
        output directory is written; ``run`` is rank 0's view of a run from step 0. Per
        process, each step sees ``run.global_batch_size // run.world_size`` images."""


def build_module(method: Method, backbone: Backbone, run: RunInfo) -> nn.Module:
    """Call ``method.build`` with the run context, or without it for a 0.1 method."""
    try:
        inspect.signature(method.build).bind(backbone, run)
    except TypeError:
        return method.build(backbone)  # type: ignore[call-arg]
    return method.build(backbone, run)
