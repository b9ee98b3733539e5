"""SimCLR's two views: one recipe, drawn twice independently, batched or image by image."""

from __future__ import annotations

import torch

from ssl_core.transforms.batched import BatchedViews, ViewRecipe
from ssl_simclr.args import SimCLRTransformArgs


def simclr_recipe(args: SimCLRTransformArgs) -> ViewRecipe:
    return ViewRecipe(
        size=args.image_size,
        crop=args.random_resize,
        flip=args.random_flip,
        jitter=args.color_jitter,
        gray_prob=args.random_gray_scale,
        blur=args.gaussian_blur,
        normalize=args.normalize,
    )


def simclr_batched(args: SimCLRTransformArgs) -> BatchedViews:
    recipe = simclr_recipe(args)
    return BatchedViews([recipe, recipe])


class SimCLRViews:
    """Callable: uint8 image (C×H×W, any channel count) -> [view0, view1], float 3×H×W each.

    The same code as the batched path, on a batch of one; its seed comes from torch's
    global generator, so ``torch.manual_seed`` makes it repeatable.
    """

    def __init__(self, args: SimCLRTransformArgs) -> None:
        self.batched = simclr_batched(args)

    def __call__(self, image: torch.Tensor) -> list[torch.Tensor]:
        seed = int(torch.randint(0, 2**62, (1,)))
        views = self.batched.finish(self.batched.prepare([(seed, image)]))
        return [v[0] for v in views]
