"""What ssl-core registers: the Method and the Transform, and the two hooks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ssl_core import ConfigError, Method, OptimizerArgs, Transform, hookimpl
from ssl_plugin_template.args import TemplateVICRegArgs, TemplateVICRegTransformArgs

if TYPE_CHECKING:
    from torch import nn

    from ssl_core import Backbone, RunInfo


class TemplateVICRegTransform(Transform):
    name = "template_vicreg"
    description = "Two views: crop, flip, color jitter, grayscale, blur, solarize, normalise."
    args_model = TemplateVICRegTransformArgs
    args: TemplateVICRegTransformArgs

    def build_batched(self) -> Any:
        from ssl_plugin_template.views import two_views

        return two_views(self.args)


class TemplateVICReg(Method):
    name = "template_vicreg"
    description = (
        "VICReg, the plugin template's method: two views' embeddings made equal, each "
        "dimension kept varied, the dimensions decorrelated."
    )
    args_model = TemplateVICRegArgs
    args: TemplateVICRegArgs
    transform = "template_vicreg"
    # The paper's view jitter, overriding the transform's own defaults.
    transform_defaults = {
        "color_jitter": {"brightness": 0.4, "contrast": 0.4, "saturation": 0.2, "hue": 0.1},
        "solarize": {"prob": 0.1},
    }
    default_epochs = 100
    default_optimizer = OptimizerArgs(name="lars", lr=0.2, momentum=0.9, weight_decay=1e-6)
    sync_batchnorm = True  # the projector's BatchNorm sees the global batch

    def build(self, backbone: Backbone, run: RunInfo) -> nn.Module:
        from ssl_plugin_template.model import TemplateVICRegModel

        return TemplateVICRegModel(backbone, self.args)

    def check_run(self, run: RunInfo) -> None:
        # The variance and covariance of one image are undefined: refuse before any output.
        if run.global_batch_size < 2:
            raise ConfigError(
                f"template_vicreg needs at least 2 images per batch (its variance and "
                f"covariance terms are taken over the batch), got batch_size "
                f"{run.global_batch_size}. Use --batch-size 2 or more."
            )


@hookimpl
def ssl_register_methods(register: Any) -> None:
    register(TemplateVICReg)


@hookimpl
def ssl_register_transforms(register: Any) -> None:
    register(TemplateVICRegTransform)
