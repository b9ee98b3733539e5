"""BYOL's registration: the Method and Transform classes, without torch at import time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ssl_byol.args import BYOLArgs, BYOLTransformArgs
from ssl_core import ConfigError, Method, OptimizerArgs, Transform, hookimpl

if TYPE_CHECKING:
    from torch import nn

    from ssl_core import Backbone, RunInfo


class BYOLTransform(Transform):
    name = "byol"
    description = (
        "Two views: random resized crop, flip, color jitter, grayscale; blur always on the "
        "first, solarization only on the second."
    )
    args_model = BYOLTransformArgs
    args: BYOLTransformArgs

    def build_batched(self) -> Any:
        from ssl_byol.views import byol_batched

        return byol_batched(self.args)


class BYOL(Method):
    name = "byol"
    description = (
        "BYOL (Grill et al. 2020): an online network predicts a momentum target network's "
        "projection of the other view; no negatives."
    )
    args_model = BYOLArgs
    args: BYOLArgs
    transform = "byol"
    default_epochs = 100
    # The paper's LARS at lr 0.2 per 256 images with 10 warmup epochs and wd 1.5e-6; biases
    # and norms get neither weight decay nor LARS adaptation (the core's default groups).
    default_optimizer = OptimizerArgs(
        name="lars", lr=0.2, momentum=0.9, weight_decay=1.5e-6, warmup_epochs=10
    )
    sync_batchnorm = True

    def build(self, backbone: Backbone, run: RunInfo) -> nn.Module:
        from ssl_byol.model import BYOLModel

        return BYOLModel(backbone, self.args, run.total_steps)

    def check_run(self, run: RunInfo) -> None:
        # The heads' BatchNorm normalises over the whole batch (global on several processes,
        # sync_batchnorm): one image gives it nothing to normalise over.
        if run.global_batch_size < 2:
            raise ConfigError(
                f"BYOL needs at least 2 images per batch: its projection and prediction heads "
                f"use BatchNorm, which cannot normalise a single image (batch_size "
                f"{run.global_batch_size} over {run.world_size} process). Use --batch-size 2 "
                f"or more."
            )


@hookimpl
def ssl_register_methods(register: Any) -> None:
    register(BYOL)


@hookimpl
def ssl_register_transforms(register: Any) -> None:
    register(BYOLTransform)
