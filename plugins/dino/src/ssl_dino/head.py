"""DINO's projection head: a 3-layer MLP, an L2-normalised bottleneck, and a
weight-normalised last layer whose outputs the softmax is taken over."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class WeightNormalizedLinear(nn.Module):
    """A linear map without bias whose rows are ``direction / ‖direction‖ · scale``.

    Written out rather than through torch's weight_norm parametrisation so that the fixed
    scale of ``norm_last_layer`` is simply absent (every row has norm 1), not a frozen
    parameter that optimisers and the EMA must step around.
    """

    def __init__(self, input_dim: int, output_dim: int, learn_scale: bool) -> None:
        super().__init__()
        self.direction = nn.Parameter(torch.empty(output_dim, input_dim))
        nn.init.trunc_normal_(self.direction, std=0.02)
        # The paper starts the scale at 1 whether or not it then learns it.
        self.scale = nn.Parameter(torch.ones(output_dim, 1)) if learn_scale else None

    @property
    def weight(self) -> Tensor:
        weight = F.normalize(self.direction, dim=1)
        return weight if self.scale is None else weight * self.scale

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight)


class DINOHead(nn.Module):
    """Features -> Linear-GELU-Linear-GELU-Linear (bottleneck) -> L2 norm -> last layer."""

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        output_dim: int = 65536,
        norm_last_layer: bool = True,
    ) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(input_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, bottleneck_dim),
        )
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):  # the official initialisation
                nn.init.trunc_normal_(layer.weight, std=0.02)
                nn.init.zeros_(layer.bias)
        self.last_layer = WeightNormalizedLinear(bottleneck_dim, output_dim, not norm_last_layer)

    def forward(self, x: Tensor) -> Tensor:
        return self.last_layer(F.normalize(self.mlp(x), dim=-1))
