"""BYOL's loss: the normalised mean squared error between prediction and target."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def byol_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """‖p/‖p‖ − z/‖z‖‖² = 2 − 2·cos(p, z), averaged over the batch (the paper's equation 2),
    in at least float32, also under bf16 autocast. The target carries no gradient."""
    dtype = torch.promote_types(prediction.dtype, torch.float32)
    with torch.autocast(device_type=prediction.device.type, enabled=False):
        p = F.normalize(prediction.to(dtype), dim=1)
        z = F.normalize(target.detach().to(dtype), dim=1)
        return (2 - 2 * (p * z).sum(dim=1)).mean()
