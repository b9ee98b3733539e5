"""Batch normalisation over the global batch of all processes, on any device.

torch.nn.SyncBatchNorm runs on GPUs only; SimCLR's global BN must also hold for CPU runs
(gloo), where it is what makes a 2-process step equal the 1-process step on the same batch.
The statistics are all-reduced with a gradient-carrying all_reduce, so the gradient through
the mean and variance includes every process's loss.
"""

from __future__ import annotations

import torch
from torch import nn

from ssl_core.distributed import all_reduce_sum_with_gradient, is_distributed


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm1d/2d/3d whose training statistics cover every process's batch."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(input)
        self._check_input_dim(input)
        channels = input.shape[1]
        dims = [0, *range(2, input.dim())]
        shape = [1, channels] + [1] * (input.dim() - 2)
        values = input.float()
        # Two passes (mean, then squared deviations) rather than E[x²] - E[x]², which loses
        # the variance to cancellation when the mean is large against the spread.
        count = torch.full((1,), input.numel() / channels, device=input.device)
        total = all_reduce_sum_with_gradient(torch.cat([values.sum(dims), count]))
        n = total[-1]
        mean = total[:channels] / n
        centered = values - mean.view(shape)
        var = all_reduce_sum_with_gradient((centered * centered).sum(dims)) / n
        if self.track_running_stats and self.running_mean is not None:
            self._update_running_stats(mean.detach(), var.detach(), n.detach())
        out = centered * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(input.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, n: torch.Tensor):
        assert self.running_mean is not None and self.running_var is not None
        assert self.num_batches_tracked is not None
        self.num_batches_tracked.add_(1)
        momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var * n / (n - 1).clamp_min(1)
        self.running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
        self.running_var.mul_(1 - momentum).add_(unbiased, alpha=momentum)


def convert_global_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm*d in ``module`` by GlobalBatchNorm that holds the very same
    Parameter and buffer objects: a frozen norm (``requires_grad=False``, a momentum
    target's) stays frozen, and an optimiser or EMA that holds them keeps working."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(
        module, GlobalBatchNorm
    ):
        converted = GlobalBatchNorm(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
            device="meta",  # placeholders only: the originals replace them below
        )
        for name, param in module.named_parameters(recurse=False):
            setattr(converted, name, param)
        for name, buffer in module.named_buffers(recurse=False):
            setattr(converted, name, buffer)
        converted.train(module.training)
        return converted
    for name, child in module.named_children():
        module.add_module(name, convert_global_batchnorm(child))
    return module


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """torch's fused SyncBatchNorm on CUDA, GlobalBatchNorm elsewhere."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return convert_global_batchnorm(module)
