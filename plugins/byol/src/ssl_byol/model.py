"""The trainable BYOL module: the online network with its predictor, and a momentum target."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ssl_byol.args import BYOLArgs
from ssl_byol.heads import BYOLPredictionHead, BYOLProjectionHead
from ssl_byol.loss import byol_loss
from ssl_core import MethodModule, StepOutput
from ssl_core.schedules import cosine_schedule

if TYPE_CHECKING:
    from ssl_core import Backbone


class BYOLModel(MethodModule):
    """Online: backbone -> projection -> prediction. Target: a copy of backbone and
    projection, not trained but moved towards the online weights after every optimiser
    step, θ' ← τθ' + (1 − τ)θ, with τ rising along a cosine to ``momentum_end``.

    The target is an ordinary (frozen) submodule, so the checkpoint holds it and a resumed
    run continues bit for bit; τ is a function of the step, so it needs no state.
    """

    momentum: Tensor

    def __init__(self, backbone: Backbone, args: BYOLArgs, total_steps: int) -> None:
        super().__init__()
        self.args = args
        self.total_steps = total_steps
        self.backbone = backbone
        self.projection = BYOLProjectionHead(
            backbone.feature_dim, args.projection_hidden_dim, args.projection_dim
        )
        self.prediction = BYOLPredictionHead(
            args.projection_dim, args.prediction_hidden_dim, args.projection_dim
        )
        # The target starts as the online network's copy (the paper's initialisation).
        self.target_backbone = copy.deepcopy(backbone).requires_grad_(False)
        self.target_projection = copy.deepcopy(self.projection).requires_grad_(False)
        # τ of the current step, for the log. A buffer rather than a float: under
        # torch.compile a changing Python number would recompile the forward every step.
        self.register_buffer("momentum", torch.tensor(args.momentum_start), persistent=False)

    def momentum_at(self, step: int) -> float:
        """τ for the update after step ``step`` (from 0)."""
        return cosine_schedule(
            step, self.total_steps, self.args.momentum_start, self.args.momentum_end
        )

    def on_before_forward(self, step: int) -> None:
        self.momentum.fill_(self.momentum_at(step))

    def forward(self, views: list[Tensor]) -> StepOutput:
        if len(views) != 2:
            raise ValueError(f"BYOL takes two views per image, got {len(views)}")
        # Each view on its own, as the paper does: BatchNorm statistics per view.
        predictions = [self.prediction(self.projection(self.backbone(v))) for v in views]
        with torch.no_grad():
            targets = [self.target_projection(self.target_backbone(v)) for v in views]
        # Symmetric: each view's prediction of the other view's target.
        loss = byol_loss(predictions[0], targets[1]) + byol_loss(predictions[1], targets[0])
        return StepOutput(loss, {"momentum": self.momentum})

    @torch.no_grad()
    def on_after_optimizer_step(self, step: int) -> None:
        tau = self.momentum_at(step)
        online: list[Tensor] = [*self.backbone.parameters(), *self.projection.parameters()]
        target: list[Tensor] = [
            *self.target_backbone.parameters(),
            *self.target_projection.parameters(),
        ]
        # One fused call per operation over all tensors instead of two per tensor.
        torch._foreach_mul_(target, tau)
        torch._foreach_add_(target, online, alpha=1 - tau)
