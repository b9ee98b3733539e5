"""SimCLR's two views: the same random pipeline drawn twice, independently."""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from ssl_core.transforms import ops
from ssl_simclr.args import SimCLRTransformArgs


def simclr_pipeline(args: SimCLRTransformArgs) -> v2.Transform:
    return v2.Compose(
        [
            ops.random_resized_crop(args.image_size, args.random_resize),
            ops.random_flip(args.random_flip),
            ops.color_jitter(args.color_jitter),
            ops.random_grayscale(args.random_gray_scale),
            ops.gaussian_blur(args.gaussian_blur, args.image_size),
            ops.to_float_normalized(args.normalize),
        ]
    )


class SimCLRViews:
    """Callable: uint8 image (C×H×W, any channel count) -> [view0, view1], float 3×H×W each."""

    def __init__(self, args: SimCLRTransformArgs, num_views: int = 2) -> None:
        self.pipeline = simclr_pipeline(args)
        self.num_views = num_views

    def __call__(self, image: torch.Tensor) -> list[torch.Tensor]:
        image = ops.to_rgb(image)
        return [self.pipeline(image) for _ in range(self.num_views)]
