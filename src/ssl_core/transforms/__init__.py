"""View-making transforms, the public surface for transform plugins.

The interface and the argument schemas load eagerly (no torch); the batched machinery, which
imports torch, loads on first access: ``from ssl_core.transforms import ViewRecipe``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ssl_core.transforms.args import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ColorJitterArgs,
    GaussianBlurArgs,
    ImageSizeMixin,
    NormalizeArgs,
    RandomFlipArgs,
    RandomResizeArgs,
    SolarizeArgs,
    as_size,
)
from ssl_core.transforms.base import Transform

if TYPE_CHECKING:
    from ssl_core.transforms.batched import BatchedViews, PerImageViews, ViewRecipe
    from ssl_core.transforms.ops import (
        BatchedOp,
        ColorJitter,
        GaussianBlur,
        RandomFlip,
        RandomGrayscale,
        RandomSolarize,
        apply_drawn,
    )

_LAZY = {
    "ViewRecipe": "ssl_core.transforms.batched",
    "BatchedViews": "ssl_core.transforms.batched",
    "PerImageViews": "ssl_core.transforms.batched",
    "BatchedOp": "ssl_core.transforms.ops",
    "apply_drawn": "ssl_core.transforms.ops",
    "RandomFlip": "ssl_core.transforms.ops",
    "ColorJitter": "ssl_core.transforms.ops",
    "RandomGrayscale": "ssl_core.transforms.ops",
    "GaussianBlur": "ssl_core.transforms.ops",
    "RandomSolarize": "ssl_core.transforms.ops",
}

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BatchedOp",
    "BatchedViews",
    "ColorJitter",
    "ColorJitterArgs",
    "GaussianBlur",
    "GaussianBlurArgs",
    "ImageSizeMixin",
    "NormalizeArgs",
    "PerImageViews",
    "RandomFlip",
    "RandomFlipArgs",
    "RandomGrayscale",
    "RandomResizeArgs",
    "RandomSolarize",
    "SolarizeArgs",
    "Transform",
    "ViewRecipe",
    "apply_drawn",
    "as_size",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ssl_core.transforms' has no attribute {name!r}")
