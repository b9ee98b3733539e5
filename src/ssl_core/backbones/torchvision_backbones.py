"""torchvision backbones as a plugin: ``torchvision/<name>``. Imports torchvision only when used."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ssl_core.backbones.name_lists import library_names
from ssl_core.backbones.provider import BackboneProvider, InputSize
from ssl_core.hookspecs import hookimpl
from ssl_core.transforms.args import as_size

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
        return in_families(all_model_names())

    def cached_names(self) -> list[str]:
        return in_families(library_names("torchvision", all_model_names))

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

    def check_args(self, name: str, model_args: Mapping[str, Any]) -> None:
        """The builder (``resnet18``) passes its ``**kwargs`` on to the model class it
        returns (``ResNet``): a key is valid when one of the two names it."""
        import torchvision

        from ssl_core.backbones.provider import (
            check_model_args,
            keyword_parameters,
            returned_class_parameters,
        )

        builder = torchvision.models.get_model_builder(name)
        names, _ = keyword_parameters(builder)
        class_names = returned_class_parameters(builder)
        valid = None if class_names is None else [n for n in class_names if n not in names]
        check_model_args(
            f"{self.prefix}/{name}",
            model_args,
            valid,
            also=names,
            reserved={"weights": "ssl-core builds it without pretrained weights"},
        )

    def input_size(self, name: str, **model_args: Any) -> InputSize:
        """ViTs are built for one ``image_size`` (224 unless given); the other families
        (convolutional, and Swin, which pads) take any size."""
        if name.startswith("vit_"):
            return InputSize(fixed=as_size(model_args.get("image_size", 224)))
        return InputSize()


def all_model_names() -> list[str]:
    """Every classification model torchvision lists (imports it)."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def in_families(names: list[str]) -> list[str]:
    return sorted(n for n in names if any(fnmatch.fnmatch(n, f) for f in FAMILIES))


def _find_head(model: Any) -> tuple[str, Any]:
    for attribute in HEAD_ATTRIBUTES:
        if hasattr(model, attribute):
            return attribute, getattr(model, attribute)
    raise ValueError(f"cannot find the classifier of {type(model).__name__}")


@hookimpl
def ssl_register_backbones(register: Any) -> None:
    register(TorchvisionBackbones())
