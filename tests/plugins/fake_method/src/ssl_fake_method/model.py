import torch
import torch.distributed as dist
from torch import nn


class FakeModel(nn.Module):
    """Pulls the two views' features together; raises on one rank when asked to."""

    def __init__(self, backbone, fail_on_rank):
        super().__init__()
        self.backbone = backbone
        self.fail_on_rank = fail_on_rank

    def forward(self, views):
        rank = dist.get_rank() if dist.is_initialized() else 0
        if rank == self.fail_on_rank:
            raise RuntimeError(f"fake method failure on rank {rank}")
        a, b = self.backbone(torch.cat(views)).chunk(2)
        return (a - b).pow(2).mean()
