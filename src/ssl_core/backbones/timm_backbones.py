"""timm backbones as a plugin: ``timm/<name>`` for any timm model, created without classifier."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ssl_core.backbones.provider import BackboneProvider
from ssl_core.hookspecs import hookimpl

if TYPE_CHECKING:
    from ssl_core.backbones.backbone import Backbone


class TimmBackbones(BackboneProvider):
    prefix = "timm"
    description = "any timm model, created with num_classes=0 (pooled features)"

    def list_names(self) -> list[str]:
        import timm

        return sorted(timm.list_models())

    def build(self, name: str, **model_args: Any) -> Backbone:
        import timm

        from ssl_core.backbones.backbone import Backbone

        model = timm.create_model(name, pretrained=False, num_classes=0, **model_args)
        feature_dim: Any = getattr(model, "head_hidden_size", None) or model.num_features
        return Backbone(model, int(feature_dim), f"{self.prefix}/{name}")


@hookimpl
def ssl_register_backbones(register: Any) -> None:
    register(TimmBackbones())
