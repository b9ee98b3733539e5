"""The transform's two views: one recipe of ssl-core's batched ops, drawn twice."""

from __future__ import annotations

from ssl_core.transforms import (
    BatchedViews,
    ColorJitter,
    GaussianBlur,
    RandomFlip,
    RandomGrayscale,
    RandomSolarize,
    ViewRecipe,
)
from ssl_plugin_template.args import TemplateVICRegTransformArgs


def two_views(args: TemplateVICRegTransformArgs) -> BatchedViews:
    recipe = ViewRecipe(
        size=args.view_size,
        crop=args.random_resize,
        ops=[
            RandomFlip(args.random_flip),
            ColorJitter(args.color_jitter),
            RandomGrayscale(args.random_gray_scale),
            GaussianBlur(args.gaussian_blur),
            RandomSolarize(args.solarize),
        ],
        normalize=args.normalize,
    )
    return BatchedViews([recipe, recipe])
