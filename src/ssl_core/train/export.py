"""Writing the pretrained backbone in its own library's format."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ssl_core.backbones.backbone import Backbone
from ssl_core.train import checkpoint as ckpt
from ssl_core.train.model import exported_backbone


def export_backbone(module: nn.Module, path: Path) -> None:
    """The network the method exports (``exported_backbone()``, by default its
    ``backbone``): for a registry backbone the library's own model's state_dict, loadable
    by its constructor with only the classifier missing."""
    network = exported_backbone(module)
    if isinstance(network, Backbone):
        network = network.original_model()
    ckpt.save_atomic(network.state_dict(), path)
