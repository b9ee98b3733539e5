"""timm backbones as a plugin: ``timm/<name>`` for any timm model, created without classifier."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ssl_core.backbones.name_lists import library_names
from ssl_core.backbones.provider import BackboneProvider, InputSize
from ssl_core.hookspecs import hookimpl
from ssl_core.transforms.args import as_size

if TYPE_CHECKING:
    from ssl_core.backbones.backbone import Backbone


class TimmBackbones(BackboneProvider):
    prefix = "timm"
    description = "any timm model, created with num_classes=0 (pooled features)"

    def list_names(self) -> list[str]:
        return all_model_names()

    def cached_names(self) -> list[str]:
        return library_names("timm", all_model_names)

    def build(self, name: str, **model_args: Any) -> Backbone:
        import timm

        from ssl_core.backbones.backbone import Backbone

        model = timm.create_model(name, pretrained=False, num_classes=0, **model_args)
        feature_dim: Any = getattr(model, "head_hidden_size", None) or model.num_features
        return Backbone(model, int(feature_dim), f"{self.prefix}/{name}")

    def check_args(self, name: str, model_args: Mapping[str, Any]) -> None:
        """timm's entrypoint (``resnet18``) passes its ``**kwargs`` on to the model class it
        returns (``ResNet``); create_model and build_model_with_cfg take their own options."""
        import timm
        from timm.models import build_model_with_cfg, model_entrypoint, split_model_name_tag

        from ssl_core.backbones.provider import (
            check_model_args,
            keyword_parameters,
            returned_class_parameters,
        )

        entrypoint = model_entrypoint(split_model_name_tag(name)[0])
        valid = returned_class_parameters(entrypoint)
        factory = {
            *keyword_parameters(entrypoint)[0],
            *keyword_parameters(timm.create_model)[0],
            *keyword_parameters(build_model_with_cfg)[0],
            # what build_model_with_cfg reads from its **kwargs
            *("features_only", "out_indices", "feature_cls", "pruned", "pretrained_strict"),
        }
        check_model_args(
            f"{self.prefix}/{name}",
            model_args,
            valid,
            also=factory - {"model_name", "model_cls", "variant"},
            reserved={
                "pretrained": "ssl-core builds it without pretrained weights",
                "num_classes": "ssl-core builds it with num_classes=0 (pooled features)",
            },
        )

    def input_size(self, name: str, **model_args: Any) -> InputSize:
        """timm's own record: ViTs and other fixed-size models take their ``img_size``
        (the pretrained config's input size unless given); with ``dynamic_img_size`` any
        size in whole patches; convolutional models any size."""
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(name)
        if cfg is None or not cfg.fixed_input_size or model_args.get("dynamic_img_pad"):
            return InputSize()
        if not model_args.get("dynamic_img_size"):
            return InputSize(fixed=as_size(model_args.get("img_size") or cfg.input_size[-2:]))
        import timm
        import torch

        try:  # the patch size, read off a model that holds no memory
            with torch.device("meta"):
                model = timm.create_model(name, pretrained=False, num_classes=0, **model_args)
            patch_embed: Any = model.patch_embed
            patch = as_size(patch_embed.patch_size)
        except Exception:
            return InputSize()  # a wrong size then fails the first step, with a hint
        return InputSize(multiple=math.lcm(*patch))

    def any_size_args(self, name: str, **model_args: Any) -> dict[str, Any] | None:
        """timm's ``dynamic_img_size`` where the model class takes it (ViTs and their kin):
        position embeddings resampled to each input's grid; the exported weights keep the
        size the model was built for."""
        from timm.models import model_entrypoint, split_model_name_tag

        from ssl_core.backbones.provider import returned_class_parameters

        try:
            entrypoint = model_entrypoint(split_model_name_tag(name)[0])
        except RuntimeError:  # not a timm model: check_args has said so already
            return None
        takes = returned_class_parameters(entrypoint) or []
        return {"dynamic_img_size": True} if "dynamic_img_size" in takes else None


def all_model_names() -> list[str]:
    """Every model timm lists (imports it, and torch)."""
    import timm

    return sorted(timm.list_models())


@hookimpl
def ssl_register_backbones(register: Any) -> None:
    register(TimmBackbones())
