"""NT-Xent (normalised temperature-scaled cross-entropy), SimCLR's contrastive loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssl_core import distributed


class NTXentLoss(nn.Module):
    """``loss(z0, z1)`` for the projections of two views (N×D each).

    Each of the 2N anchors has its other view as positive and every other view as negative
    (2N-2 of them; 2·N·world-2 when torch.distributed is initialised and
    ``gather_distributed``). Cosine similarities are divided by the temperature, the
    self-similarity is removed, and the cross-entropy is taken in at least float32, also
    under bf16 autocast. Returns the mean over this process's 2N anchors; averaged over
    ranks (as DDP does with gradients) it is the loss of the global batch.
    """

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = True) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    def forward(self, z0: Tensor, z1: Tensor) -> Tensor:
        if z0.shape != z1.shape or z0.dim() != 2:
            raise ValueError(f"expected two N×D tensors of one shape, got {z0.shape}, {z1.shape}")
        dtype = torch.promote_types(z0.dtype, torch.float32)  # float64 stays float64
        with torch.autocast(device_type=z0.device.type, enabled=False):
            z0 = F.normalize(z0.to(dtype), dim=1)
            z1 = F.normalize(z1.to(dtype), dim=1)
            n = z0.shape[0]
            if self.gather_distributed and distributed.is_distributed():
                rank, world = distributed.rank(), distributed.world_size()
                z0_all = distributed.gather_with_gradient(z0)
                z1_all = distributed.gather_with_gradient(z1)
            else:
                rank, world = 0, 1
                z0_all, z1_all = z0, z1
            anchors = torch.cat([z0, z1])  # 2N × D, this rank's views
            candidates = torch.cat([z0_all, z1_all])  # 2NW × D, every rank's views
            logits = anchors @ candidates.T / self.temperature
            local = torch.arange(n, device=z0.device) + rank * n
            own = torch.cat([local, local + n * world])  # each anchor's own column
            pair = torch.cat([local + n * world, local])  # its other view's column
            self_similarity = torch.zeros_like(logits, dtype=torch.bool)
            self_similarity[torch.arange(2 * n, device=z0.device), own] = True
            logits = logits.masked_fill(self_similarity, float("-inf"))
            return F.cross_entropy(logits, pair)
