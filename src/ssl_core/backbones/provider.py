"""The BackboneProvider interface, and a backbone resolved for a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

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


@dataclass(frozen=True)
class BackboneSource:
    """Where a run's backbone comes from: a provider and a name in it, or the user's own
    module. It travels with the run's configuration to every training process, so
    processes started for ``devices=N`` need no plugin lookup (and know providers that were
    registered in-process)."""

    name: str
    provider: BackboneProvider | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    module: nn.Module | None = None

    def build(self) -> Backbone:
        from ssl_core.backbones.backbone import from_module

        if self.module is not None:
            return from_module(self.module, self.name)
        assert self.provider is not None
        return self.provider.build(self.name.partition("/")[2], **self.model_args)
