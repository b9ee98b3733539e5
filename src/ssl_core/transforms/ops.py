"""Small helpers shared by the transforms: channel conversion and the blur kernel size."""

from __future__ import annotations

import torch


def to_rgb(image: torch.Tensor) -> torch.Tensor:
    """Any decoded image as uint8 RGB: grayscale is repeated, alpha is dropped."""
    if image.dim() == 2:
        image = image.unsqueeze(0)
    channels = image.shape[0]
    if channels == 3:
        return image
    if channels == 1:
        return image.expand(3, -1, -1).contiguous()
    if channels == 2:  # gray + alpha
        return image[:1].expand(3, -1, -1).contiguous()
    if channels == 4:
        return image[:3].contiguous()
    raise ValueError(f"cannot make RGB from an image with {channels} channels")


def blur_kernel_size(image_size: tuple[int, int]) -> int:
    """About a tenth of the image side, odd, at least 3 (the SimCLR paper's choice)."""
    return max(3, int(0.1 * min(image_size)) // 2 * 2 + 1)
