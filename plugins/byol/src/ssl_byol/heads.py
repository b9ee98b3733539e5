"""BYOL's MLPs: Linear -> BatchNorm -> ReLU -> Linear, for the projection and the prediction."""

from __future__ import annotations

from torch import nn


class _MLP(nn.Sequential):
    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int) -> None:
        super().__init__(
            nn.Linear(input_dim, hidden_dim, bias=False),  # the norm's shift is the bias
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, output_dim),
        )


class BYOLProjectionHead(_MLP):
    """Backbone features -> projection (the paper: 4096 hidden, 256 out)."""

    def __init__(self, input_dim: int, hidden_dim: int = 4096, output_dim: int = 256) -> None:
        super().__init__(input_dim, hidden_dim, output_dim)


class BYOLPredictionHead(_MLP):
    """The online network's projection -> its prediction of the target's projection."""

    def __init__(self, input_dim: int = 256, hidden_dim: int = 4096, output_dim: int = 256):
        super().__init__(input_dim, hidden_dim, output_dim)
