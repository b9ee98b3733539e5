"""The trainable DINO module: a student (backbone + head) and its momentum teacher."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ssl_core import ConfigError, MethodModule, RunInfo, StepOutput, distributed
from ssl_dino.args import DINOArgs, auto_output_dim
from ssl_dino.head import DINOHead
from ssl_dino.loss import dino_loss
from ssl_dino.schedules import DINOSchedules

if TYPE_CHECKING:
    from torch.optim import Optimizer

    from ssl_core import Backbone

# The optimiser's weight decay that DINO's default optimiser sets, until the core hands the
# actual one to param_groups.
DEFAULT_WEIGHT_DECAY = 0.04


class DINOModel(MethodModule):
    """Student: backbone -> head, on every view. Teacher: a copy of both, on the two global
    views only, moved towards the student after every optimiser step with a momentum
    rising along a cosine. The student learns to predict the teacher's centred, sharpened
    softmax of another view.

    The teacher and the centre live in the module, so the checkpoint holds them and a
    resumed run continues bit for bit; every schedule is a function of the step.
    """

    center: Tensor
    momentum: Tensor
    teacher_temp: Tensor
    weight_decay: Tensor

    def __init__(self, backbone: Backbone, args: DINOArgs, run: RunInfo) -> None:
        super().__init__()
        self.args = args
        self.run = run
        self.output_dim = (
            auto_output_dim(run.steps_per_epoch * run.global_batch_size)
            if args.output_dim == "auto"
            else args.output_dim
        )
        self.fixed_size_vit = _fixed_size_vit(backbone)
        self.backbone = backbone
        self.head = DINOHead(
            backbone.feature_dim,
            args.hidden_dim,
            args.bottleneck_dim,
            self.output_dim,
            args.norm_last_layer,
        )
        # The teacher starts as the student's copy (the paper's initialisation).
        self.teacher_backbone = copy.deepcopy(backbone).requires_grad_(False)
        self.teacher_head = copy.deepcopy(self.head).requires_grad_(False)
        self.register_buffer("center", torch.zeros(1, self.output_dim))
        self.schedules = DINOSchedules(args, run, DEFAULT_WEIGHT_DECAY)
        # This step's schedule values, for the log. Buffers rather than floats: under
        # torch.compile a changing Python number would recompile the forward every step.
        for name in ("momentum", "teacher_temp", "weight_decay"):
            self.register_buffer(name, torch.tensor(0.0), persistent=False)
        self.on_before_forward(0)

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """DINO's groups: decay on weight matrices and kernels, none on biases and norms.
        The decayed group's value follows the schedule from ``weight_decay`` on."""
        self.schedules = DINOSchedules(self.args, self.run, weight_decay)
        trainable = [p for p in self.parameters() if p.requires_grad]
        return [
            {
                "params": [p for p in trainable if p.ndim > 1],
                "weight_decay": weight_decay,
                "dino_weight_decay_schedule": True,
            },
            {"params": [p for p in trainable if p.ndim <= 1], "weight_decay": 0.0},
        ]

    def on_before_forward(self, step: int) -> None:
        self.momentum.fill_(self.schedules.momentum(step))
        self.teacher_temp.fill_(self.schedules.teacher_temp(step))
        self.weight_decay.fill_(self.schedules.weight_decay(step))

    def forward(self, views: list[Tensor]) -> StepOutput:
        if len(views) < 2:
            raise ValueError(f"DINO takes two global views and any local ones, got {len(views)}")
        global_views, local_views = views[:2], views[2:]
        if local_views and self.fixed_size_vit:
            raise ConfigError(_FIXED_SIZE_VIT.format(name=self.backbone.name))
        batch = len(global_views[0])
        # Views of one size go through the backbone together, as the official
        # MultiCropWrapper does: BatchNorm statistics over all of them.
        student = self.head(self.backbone(torch.cat(global_views))).chunk(2)
        if local_views:
            local = self.head(self.backbone(torch.cat(local_views)))
            student += local.split(batch)
        with torch.no_grad():
            teacher_out = self.teacher_head(self.teacher_backbone(torch.cat(global_views)))
        loss = dino_loss(
            list(teacher_out.chunk(2)),
            list(student),
            self.center,
            self.teacher_temp,
            self.args.student_temp,
        )
        self.update_center(teacher_out)
        metrics = {
            "momentum": self.momentum,
            "teacher_temp": self.teacher_temp,
            "weight_decay": self.weight_decay,
        }
        return StepOutput(loss, metrics)

    @torch.no_grad()
    def update_center(self, teacher_out: Tensor) -> None:
        """c ← m·c + (1 − m)·(mean teacher output over the global batch): every process
        gets the same mean, so the centre is equal on all of them."""
        batch_center = distributed.all_reduce_mean(teacher_out.float().mean(dim=0, keepdim=True))
        m = self.args.center_momentum
        self.center.mul_(m).add_(batch_center.to(self.center.dtype), alpha=1 - m)

    @torch.no_grad()
    def on_before_optimizer_step(self, step: int, optimizer: Optimizer) -> None:
        for group in optimizer.param_groups:
            if group.get("dino_weight_decay_schedule"):
                group["weight_decay"] = self.schedules.weight_decay(step)
        if self.schedules.last_layer_frozen(step):
            # No gradient: the optimiser skips the layer entirely (no update, no decay).
            for param in self.head.last_layer.parameters():
                param.grad = None

    @torch.no_grad()
    def on_after_optimizer_step(self, step: int) -> None:
        m = self.schedules.momentum(step)
        student: list[Tensor] = [*self.backbone.parameters(), *self.head.parameters()]
        teacher: list[Tensor] = [
            *self.teacher_backbone.parameters(),
            *self.teacher_head.parameters(),
        ]
        # One fused call per operation over all tensors instead of two per tensor.
        torch._foreach_mul_(teacher, m)
        torch._foreach_add_(teacher, student, alpha=1 - m)

    def exported_backbone(self) -> nn.Module:
        return self.teacher_backbone if self.args.export == "teacher" else self.backbone


def _fixed_size_vit(backbone: Backbone) -> bool:
    """A timm ViT built for one image size cannot take local views smaller than the global."""
    patch_embed = getattr(backbone.model, "patch_embed", None)
    return bool(getattr(patch_embed, "strict_img_size", False))


_FIXED_SIZE_VIT = (
    "{name} takes only images of its img_size, but DINO's local views are smaller than its "
    "global views: build it with timm's dynamic_img_size=True (ssl-core does that itself for "
    "timm/ model names), or set transform_args.num_local_views=0."
)
