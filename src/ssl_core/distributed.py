"""Helpers for methods that train on several processes (torch.distributed).

Every function also works on one process, where it is the identity, so a method calls
them unconditionally. Collectives must be called by every process in the same order.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = [
    "all_reduce_mean",
    "all_reduce_sum_with_gradient",
    "gather_with_gradient",
    "is_distributed",
    "rank",
    "world_size",
]


def is_distributed() -> bool:
    """True when a process group of more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


class _GatherWithGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> tuple[torch.Tensor, ...]:
        gathered = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, tensor.contiguous())
        return tuple(gathered)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor) -> torch.Tensor:
        # Every process's loss depends on this process's slice: sum their gradients.
        stacked = torch.stack(grads)
        dist.all_reduce(stacked, op=dist.ReduceOp.SUM)
        return stacked[dist.get_rank()]


def gather_with_gradient(tensor: torch.Tensor) -> torch.Tensor:
    """Every process's ``tensor`` concatenated along dim 0 in rank order (each process
    must give the same shape). The backward sums the gradients that all processes' losses
    put on this process's slice, so gradients flow as if the batch were whole."""
    if not is_distributed():
        return tensor
    return torch.cat(_GatherWithGradient.apply(tensor), dim=0)


class _AllReduceSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        out = grad.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out


def all_reduce_sum_with_gradient(tensor: torch.Tensor) -> torch.Tensor:
    """The sum over processes, as a new tensor; the backward sums the gradients the same
    way (statistics over the global batch, such as a global BatchNorm's mean)."""
    if not is_distributed():
        return tensor
    return _AllReduceSum.apply(tensor)


@torch.no_grad()
def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean over processes, as a new tensor, without gradient (a centre, a logged
    value). Integer tensors are averaged in float32."""
    if not is_distributed():
        return tensor.detach().clone()
    out = tensor.detach().float() if not tensor.is_floating_point() else tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.div_(dist.get_world_size())
