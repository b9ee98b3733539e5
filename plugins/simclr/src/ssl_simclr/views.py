"""SimCLR's two views: one recipe, drawn twice independently."""

from __future__ import annotations

from ssl_core.transforms import (
    BatchedViews,
    ColorJitter,
    GaussianBlur,
    RandomFlip,
    RandomGrayscale,
    ViewRecipe,
)
from ssl_simclr.args import SimCLRTransformArgs


def simclr_recipe(args: SimCLRTransformArgs) -> ViewRecipe:
    return ViewRecipe(
        size=args.view_size,
        crop=args.random_resize,
        ops=[
            RandomFlip(args.random_flip),
            ColorJitter(args.color_jitter),
            RandomGrayscale(args.random_gray_scale),
            GaussianBlur(args.gaussian_blur),
        ],
        normalize=args.normalize,
    )


def simclr_batched(args: SimCLRTransformArgs) -> BatchedViews:
    recipe = simclr_recipe(args)
    return BatchedViews([recipe, recipe])
