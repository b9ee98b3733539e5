"""DINO's registration: the Method and Transform classes, without torch at import time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ssl_core import Method, OptimizerArgs, Transform, hookimpl
from ssl_dino.args import DINOArgs, DINOTransformArgs, auto_output_dim

if TYPE_CHECKING:
    from torch import nn

    from ssl_core import Backbone, RunInfo


class DINOTransform(Transform):
    name = "dino"
    description = (
        "Multi-crop: two global views (blur always on the first, solarization sometimes on "
        "the second) and several smaller local views; flip, color jitter, grayscale on all."
    )
    args_model = DINOTransformArgs
    args: DINOTransformArgs

    def build_batched(self) -> Any:
        from ssl_dino.views import dino_batched

        return dino_batched(self.args)


class DINO(Method):
    name = "dino"
    description = (
        "DINO (Caron et al. 2021): a student matches a momentum teacher's centred, sharpened "
        "softmax across global and local views; no negatives."
    )
    args_model = DINOArgs
    args: DINOArgs
    transform = "dino"
    default_epochs = 100
    # The official AdamW at lr 5e-4 per 256 images with 10 warmup epochs, weight decay 0.04
    # (rising to method_args.weight_decay_end) and gradient clipping at norm 3.0.
    # The lr falls along a cosine to 0 (the official code: to 1e-6); the core caps the
    # warmup at a tenth of the run. LightlyTrain's default is SGD at lr 0.03, wd 1e-4.
    default_optimizer = OptimizerArgs(
        name="adamw", lr=0.0005, weight_decay=0.04, warmup_epochs=10, gradient_clip_norm=3.0
    )
    # The official code syncs BatchNorm over processes for ResNets (student and teacher).
    sync_batchnorm = True

    def resolve_auto(self, run: RunInfo) -> DINOArgs:
        """output_dim "auto" as the number the images per epoch give: config.json records
        it, and a resume keeps it when the data set has grown since."""
        if self.args.output_dim != "auto":
            return self.args
        images = run.steps_per_epoch * run.global_batch_size
        return self.args.model_copy(update={"output_dim": auto_output_dim(images)})

    def build(self, backbone: Backbone, run: RunInfo) -> nn.Module:
        from ssl_dino.model import DINOModel

        return DINOModel(backbone, self.args, run)


@hookimpl
def ssl_register_methods(register: Any) -> None:
    register(DINO)


@hookimpl
def ssl_register_transforms(register: Any) -> None:
    register(DINOTransform)
