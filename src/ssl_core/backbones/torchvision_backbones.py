"""torchvision backbones as a plugin: ``torchvision/<name>``. Imports torchvision only when used."""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING, Any

from ssl_core.backbones.provider import BackboneProvider
from ssl_core.hookspecs import hookimpl

if TYPE_CHECKING:
    from ssl_core.backbones.backbone import Backbone

# Classification families whose head is a Linear that can be cut off cleanly.
FAMILIES = (
    "resnet*",
    "resnext*",
    "wide_resnet*",
    "convnext_*",
    "efficientnet_*",
    "mobilenet_*",
    "regnet_*",
    "vit_*",
    "swin_*",
    "densenet*",
    "shufflenet_*",
    "mnasnet*",
)
HEAD_ATTRIBUTES = ("fc", "classifier", "heads", "head")


class TorchvisionBackbones(BackboneProvider):
    prefix = "torchvision"
    description = "torchvision.models classification networks, classifier removed"

    def list_names(self) -> list[str]:
        import torchvision

        names = torchvision.models.list_models(module=torchvision.models)
        return sorted(n for n in names if any(fnmatch.fnmatch(n, f) for f in FAMILIES))

    def build(self, name: str, **model_args: Any) -> Backbone:
        import torchvision
        from torch import nn

        from ssl_core.backbones.backbone import Backbone

        model = torchvision.models.get_model(name, weights=None, **model_args)
        head_name, head = _find_head(model)
        if isinstance(head, nn.Linear):
            feature_dim = head.in_features
            setattr(model, head_name, nn.Identity())
        else:
            # Sequential head: keep its norm/activation layers, cut the final Linear and any
            # Dropout (dropout on features would only add noise to the projection head).
            linears = [i for i, m in enumerate(head) if isinstance(m, nn.Linear)]
            last = linears[-1]
            feature_dim = head[last].in_features
            head[last] = nn.Identity()
            for i, layer in enumerate(head):
                if isinstance(layer, nn.Dropout):
                    head[i] = nn.Identity()
        return Backbone(model, feature_dim, f"{self.prefix}/{name}")


def _find_head(model: Any) -> tuple[str, Any]:
    for attribute in HEAD_ATTRIBUTES:
        if hasattr(model, attribute):
            return attribute, getattr(model, attribute)
    raise ValueError(f"cannot find the classifier of {type(model).__name__}")


@hookimpl
def ssl_register_backbones(register: Any) -> None:
    register(TorchvisionBackbones())
