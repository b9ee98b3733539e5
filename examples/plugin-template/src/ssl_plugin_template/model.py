"""The trainable module: backbone, projector and the VICReg loss (imports torch)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssl_core import MethodModule, StepOutput, distributed
from ssl_plugin_template.args import TemplateVICRegArgs

if TYPE_CHECKING:
    from ssl_core import Backbone


def off_diagonal(matrix: Tensor) -> Tensor:
    n = matrix.shape[0]
    return matrix.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def vicreg_terms(z_a: Tensor, z_b: Tensor, epsilon: float) -> tuple[Tensor, Tensor, Tensor]:
    """(invariance, variance, covariance) of two N×D batches of embeddings, in float32."""
    z_a, z_b = z_a.float(), z_b.float()
    invariance = F.mse_loss(z_a, z_b)
    variance = z_a.new_zeros(())
    covariance = z_a.new_zeros(())
    for z in (z_a, z_b):
        std = torch.sqrt(z.var(dim=0) + epsilon)
        variance = variance + F.relu(1 - std).mean() / 2
        centred = z - z.mean(dim=0)
        cov = centred.T @ centred / (len(z) - 1)
        covariance = covariance + off_diagonal(cov).pow(2).sum() / z.shape[1]
    return invariance, variance, covariance


class TemplateVICRegModel(MethodModule):
    def __init__(self, backbone: Backbone, args: TemplateVICRegArgs) -> None:
        super().__init__()
        self.backbone = backbone  # exported at the end of the run (exported_backbone())
        self.args = args
        self.projector = nn.Sequential(
            nn.Linear(backbone.feature_dim, args.hidden_dim, bias=False),  # BatchNorm follows
            nn.BatchNorm1d(args.hidden_dim),
            nn.ReLU(),
            # No bias: the loss ignores a shift of the embeddings, so no gradient would reach it.
            nn.Linear(args.hidden_dim, args.output_dim, bias=False),
        )

    def forward(self, views: list[Tensor]) -> StepOutput:
        if len(views) != 2:
            raise ValueError(f"template_vicreg takes two views per image, got {len(views)}")
        # Both views in one pass; the variance and covariance are over the global batch, so
        # two processes of B images train as one of 2B (gradients flow through the gather).
        z_a, z_b = self.projector(self.backbone(torch.cat(views))).chunk(2)
        z_a, z_b = distributed.gather_with_gradient(z_a), distributed.gather_with_gradient(z_b)
        invariance, variance, covariance = vicreg_terms(z_a, z_b, self.args.epsilon)
        args = self.args
        loss = (
            args.invariance_weight * invariance
            + args.variance_weight * variance
            + args.covariance_weight * covariance
        )
        metrics = {"invariance": invariance, "variance": variance, "covariance": covariance}
        return StepOutput(loss, {k: v.detach() for k, v in metrics.items()})
