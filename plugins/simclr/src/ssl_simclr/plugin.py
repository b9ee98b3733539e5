"""SimCLR's registration: the Method and Transform classes, without torch at import time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ssl_core import ConfigError, Method, OptimizerArgs, Transform, hookimpl
from ssl_simclr.args import SimCLRArgs, SimCLRTransformArgs

if TYPE_CHECKING:
    from torch import nn

    from ssl_core import Backbone, RunInfo


class SimCLRTransform(Transform):
    name = "simclr"
    description = "Two views: random resized crop, flip, color jitter, grayscale, blur, normalise."
    args_model = SimCLRTransformArgs
    args: SimCLRTransformArgs

    def build_batched(self) -> Any:
        from ssl_simclr.views import simclr_batched

        return simclr_batched(self.args)


class SimCLR(Method):
    name = "simclr"
    description = (
        "SimCLR (Chen et al. 2020): contrast two augmented views of each image against the "
        "batch's other views with the NT-Xent loss."
    )
    args_model = SimCLRArgs
    args: SimCLRArgs
    transform = "simclr"
    default_epochs = 100
    default_optimizer = OptimizerArgs(name="sgd", lr=0.3, momentum=0.9, weight_decay=1e-4)
    sync_batchnorm = True

    def build(self, backbone: Backbone, run: RunInfo | None = None) -> nn.Module:
        from ssl_simclr.model import SimCLRModel

        return SimCLRModel(backbone, self.args)

    def check_run(self, run: RunInfo) -> None:
        # Negatives are gathered from every process, so the global batch is what counts.
        if run.global_batch_size < 2:
            processes = f"{run.world_size} process{'es' if run.world_size > 1 else ''}"
            raise ConfigError(
                f"SimCLR needs at least 2 images per batch to have negatives: with batch_size "
                f"{run.global_batch_size} over {processes} each image's two views are compared "
                f"only with each other, the loss is 0 and nothing is learnt. Use --batch-size 2 "
                f"or more (SimCLR learns best from hundreds)."
            )


@hookimpl
def ssl_register_methods(register: Any) -> None:
    register(SimCLR)


@hookimpl
def ssl_register_transforms(register: Any) -> None:
    register(SimCLRTransform)
