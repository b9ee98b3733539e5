"""Backbone: a library's model with its classifier removed, giving pooled features."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Backbone(nn.Module):
    """Wraps a model whose forward returns features, and remembers the model for export.

    ``forward`` returns pooled features of shape N×feature_dim. ``original_model()`` is the
    library's own model object (classifier replaced by identity); its ``state_dict`` is the
    exported file, loadable by the library's constructor with only the classifier missing.
    """

    def __init__(self, model: nn.Module, feature_dim: int, name: str) -> None:
        super().__init__()
        self.model = model
        self.feature_dim = int(feature_dim)
        self.name = name

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return pool_features(self.model(images))

    def original_model(self) -> nn.Module:
        return self.model


def pool_features(output: Any) -> torch.Tensor:
    """Reduce a model output to N×D: first tensor of a tuple/dict, mean over spatial dims."""
    if isinstance(output, dict):
        output = next(iter(output.values()))
    if isinstance(output, (tuple, list)):
        output = output[0]
    out: torch.Tensor = output
    if out.dim() == 4:
        return out.mean(dim=(2, 3))
    if out.dim() == 3:  # tokens: N×L×D
        return out.mean(dim=1)
    return out.flatten(1)


def from_module(model: nn.Module, name: str = "custom") -> Backbone:
    """A user's own ``nn.Module`` as a backbone; its feature size is read or probed once."""
    if isinstance(model, Backbone):
        return model
    for attribute in ("feature_dim", "num_features", "embed_dim"):
        value = getattr(model, attribute, None)
        if isinstance(value, int) and value > 0:
            return Backbone(model, value, name)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            probe = torch.zeros(2, 3, 64, 64, device=_device_of(model))
            dim = pool_features(model(probe)).shape[1]
    finally:
        model.train(was_training)
    return Backbone(model, dim, name)


def _device_of(model: nn.Module) -> torch.device:
    for parameter in model.parameters():
        return parameter.device
    return torch.device("cpu")
