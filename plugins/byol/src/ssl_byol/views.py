"""BYOL's two views: shared crop, flip, jitter and grayscale settings; each view its own blur
and solarization."""

from __future__ import annotations

from ssl_byol.args import BYOLTransformArgs, BYOLViewArgs
from ssl_core.transforms import (
    BatchedViews,
    ColorJitter,
    GaussianBlur,
    RandomFlip,
    RandomGrayscale,
    RandomSolarize,
    ViewRecipe,
)


def byol_recipe(args: BYOLTransformArgs, view: BYOLViewArgs) -> ViewRecipe:
    return ViewRecipe(
        size=args.view_size,
        crop=args.random_resize,
        ops=[
            RandomFlip(args.random_flip),
            ColorJitter(args.color_jitter),
            RandomGrayscale(args.random_gray_scale),
            GaussianBlur(view.gaussian_blur),
            RandomSolarize(view.solarize),
        ],
        normalize=args.normalize,
    )


def byol_batched(args: BYOLTransformArgs) -> BatchedViews:
    return BatchedViews([byol_recipe(args, args.view_1), byol_recipe(args, args.view_2)])
