"""SimCLR's projection head: Linear -> BN -> ReLU, ..., Linear -> BN."""

from __future__ import annotations

from torch import Tensor, nn


class SimCLRProjectionHead(nn.Sequential):
    """``num_layers`` Linear layers; BatchNorm after each when ``batch_norm`` (then the Linear
    has no bias, the norm's shift replaces it); ReLU between layers, none after the last."""

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int = 2048,
        output_dim: int = 128,
        num_layers: int = 2,
        batch_norm: bool = True,
    ) -> None:
        dims = [input_dim] + [hidden_dim] * (num_layers - 1) + [output_dim]
        layers: list[nn.Module] = []
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            layers.append(nn.Linear(d_in, d_out, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(d_out))
            if i < num_layers - 1:
                layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)

    def forward(self, features: Tensor) -> Tensor:
        return super().forward(features)
