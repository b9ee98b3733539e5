"""DINO's loss: the student's cross-entropy against the centred, sharpened teacher."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def dino_loss(
    teacher: list[Tensor],
    student: list[Tensor],
    center: Tensor,
    teacher_temp: float | Tensor,
    student_temp: float,
) -> Tensor:
    """H(softmax((t_i − c)/τ_t), log_softmax(s_j/τ_s)) for every teacher view i and every
    student view j ≠ i (view j of the student is view j of the batch; the teacher has only
    the global views), averaged over the pairs and the batch, as the official DINOLoss.

    In at least float32, also under bf16 autocast; the teacher carries no gradient.
    """
    dtype = torch.promote_types(student[0].dtype, torch.float32)
    with torch.autocast(device_type=student[0].device.type, enabled=False):
        targets = [
            F.softmax((t.detach().to(dtype) - center.to(dtype)) / teacher_temp, dim=-1)
            for t in teacher
        ]
        log_probs = [F.log_softmax(s.to(dtype) / student_temp, dim=-1) for s in student]
        total = torch.zeros((), dtype=dtype, device=student[0].device)
        pairs = 0
        for i, target in enumerate(targets):
            for j, log_prob in enumerate(log_probs):
                if i == j:  # a view is never its own target
                    continue
                total = total + (-target * log_prob).sum(dim=-1).mean()
                pairs += 1
        return total / pairs
