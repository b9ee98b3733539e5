"""Augmentation ops on uint8 image tensors (C×H×W), built on torchvision.transforms.v2.

Methods compose these from their argument schemas (``ssl_core.transforms.args``). Randomness
comes from torch's global generator, so a seed makes a run repeatable.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from ssl_core.transforms.args import (
    ColorJitterArgs,
    GaussianBlurArgs,
    NormalizeArgs,
    RandomFlipArgs,
    RandomResizeArgs,
)


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


def random_resized_crop(size: tuple[int, int], args: RandomResizeArgs) -> v2.Transform:
    return v2.RandomResizedCrop(
        size,
        scale=(args.min_scale, args.max_scale),
        ratio=(args.min_ratio, args.max_ratio),
        antialias=True,
    )


def random_flip(args: RandomFlipArgs) -> v2.Transform:
    return v2.Compose(
        [v2.RandomHorizontalFlip(args.horizontal_prob), v2.RandomVerticalFlip(args.vertical_prob)]
    )


def color_jitter(args: ColorJitterArgs) -> v2.Transform:
    s = args.strength
    jitter = v2.ColorJitter(
        brightness=args.brightness * s,
        contrast=args.contrast * s,
        saturation=args.saturation * s,
        hue=min(args.hue * s, 0.5),
    )
    return v2.RandomApply([jitter], p=args.prob)


def random_grayscale(prob: float) -> v2.Transform:
    return v2.RandomGrayscale(p=prob)  # keeps three channels


def blur_kernel_size(image_size: tuple[int, int]) -> int:
    """About a tenth of the image side, odd, at least 3 (the SimCLR paper's choice)."""
    return max(3, int(0.1 * min(image_size)) // 2 * 2 + 1)


def gaussian_blur(args: GaussianBlurArgs, image_size: tuple[int, int]) -> v2.Transform:
    kernel = args.kernel_size or blur_kernel_size(image_size)
    if kernel % 2 == 0:
        kernel += 1
    return v2.RandomApply([v2.GaussianBlur(kernel, sigma=args.sigmas)], p=args.prob)


def to_float_normalized(args: NormalizeArgs) -> v2.Transform:
    return v2.Compose(
        [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=args.mean, std=args.std)]
    )
