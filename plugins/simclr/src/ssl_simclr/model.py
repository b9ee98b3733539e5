"""The trainable SimCLR module: backbone, projection head and loss."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ssl_core import MethodModule
from ssl_simclr.args import SimCLRArgs
from ssl_simclr.head import SimCLRProjectionHead
from ssl_simclr.loss import NTXentLoss

if TYPE_CHECKING:
    from ssl_core import Backbone


class SimCLRModel(MethodModule):
    def __init__(self, backbone: Backbone, args: SimCLRArgs) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = SimCLRProjectionHead(
            backbone.feature_dim,
            args.hidden_dim,
            args.output_dim,
            args.num_layers,
            args.batch_norm,
        )
        self.criterion = NTXentLoss(args.temperature)

    def forward(self, views: list[Tensor]) -> Tensor:
        if len(views) != 2:
            raise ValueError(f"SimCLR takes two views per image, got {len(views)}")
        # Both views in one forward pass: BatchNorm statistics cover the whole 2N batch.
        projections = self.head(self.backbone(torch.cat(views)))
        z0, z1 = projections.chunk(2)
        return self.criterion(z0, z1)
