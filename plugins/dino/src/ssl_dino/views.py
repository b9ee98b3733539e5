"""DINO's multi-crop views: two global views of image_size, then the local views, smaller.

Every view shares the flip, jitter and grayscale settings; blur and solarization differ by
kind of view, as in the paper's ``DataAugmentationDINO``.
"""

from __future__ import annotations

from ssl_core.transforms import (
    BatchedViews,
    ColorJitter,
    GaussianBlur,
    RandomFlip,
    RandomGrayscale,
    RandomResizeArgs,
    RandomSolarize,
    ViewRecipe,
)
from ssl_dino.args import DINOTransformArgs, DINOViewArgs


def dino_recipe(
    args: DINOTransformArgs, size: tuple[int, int], crop: RandomResizeArgs, view: DINOViewArgs
) -> ViewRecipe:
    return ViewRecipe(
        size=size,
        crop=crop,
        ops=[
            RandomFlip(args.random_flip),
            ColorJitter(args.color_jitter),
            RandomGrayscale(args.random_gray_scale),
            GaussianBlur(view.gaussian_blur),
            RandomSolarize(view.solarize),
        ],
        normalize=args.normalize,
    )


def dino_batched(args: DINOTransformArgs) -> BatchedViews:
    """Views in the order the model expects them: global 1, global 2, then the locals."""
    size, crop = args.view_size, args.global_random_resize
    local = dino_recipe(args, args.local_view_size, args.local_random_resize, args.local_view)
    return BatchedViews(
        [
            dino_recipe(args, size, crop, args.global_view_1),
            dino_recipe(args, size, crop, args.global_view_2),
            *[local] * args.num_local_views,  # one recipe, drawn anew for each view
        ]
    )
