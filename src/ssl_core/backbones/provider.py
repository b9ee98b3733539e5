"""The BackboneProvider interface: one provider serves every name under its prefix."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ssl_core.backbones.backbone import Backbone


class BackboneProvider:
    """Serves ``<prefix>/<name>`` backbones, e.g. ``torchvision/resnet18``.

    ``list_names`` and ``build`` may import the library; the provider object itself is built
    at registration and must be cheap.
    """

    prefix: str = ""
    description: str = ""

    def list_names(self) -> list[str]:
        raise NotImplementedError

    def build(self, name: str, **model_args: Any) -> Backbone:
        """A randomly initialised backbone; never downloads weights."""
        raise NotImplementedError
