"""SimCLR's argument schemas (pydantic only: importable without torch)."""

from __future__ import annotations

from pydantic import Field

from ssl_core import StrictArgs
from ssl_core.transforms import (
    ColorJitterArgs,
    GaussianBlurArgs,
    ImageSizeMixin,
    NormalizeArgs,
    RandomFlipArgs,
    RandomResizeArgs,
)


class SimCLRArgs(StrictArgs):
    """SimCLR method arguments; defaults follow the SimCLR paper and lightly."""

    temperature: float = Field(0.1, gt=0, description="Temperature of the NT-Xent loss.")
    hidden_dim: int = Field(2048, gt=0, description="Width of the projection head's hidden layers.")
    output_dim: int = Field(128, gt=0, description="Size of the projection the loss compares.")
    num_layers: int = Field(2, ge=1, description="Number of Linear layers in the projection head.")
    batch_norm: bool = Field(
        True, description="BatchNorm after every Linear of the head (biases dropped then)."
    )


class SimCLRTransformArgs(ImageSizeMixin):
    """Two independently augmented views per image, as in the SimCLR paper."""

    reference_image_size = 224  # the paper's ImageNet views; image_size "auto" stays at or below

    random_resize: RandomResizeArgs = Field(
        default_factory=RandomResizeArgs, description="Random resized crop."
    )
    random_flip: RandomFlipArgs = Field(default_factory=RandomFlipArgs, description="Random flips.")
    color_jitter: ColorJitterArgs = Field(
        default_factory=ColorJitterArgs, description="Random color jitter."
    )
    random_gray_scale: float = Field(
        0.2, ge=0, le=1, description="Probability of converting a view to grayscale."
    )
    gaussian_blur: GaussianBlurArgs = Field(
        default_factory=GaussianBlurArgs, description="Random Gaussian blur."
    )
    normalize: NormalizeArgs = Field(
        default_factory=NormalizeArgs, description="Normalisation after augmentation."
    )
