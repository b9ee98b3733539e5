"""The method's and the transform's argument schemas: pydantic only, so no torch.

Every field needs a default and a description: they become ``ssl methods show``, ``ssl
pretrain --method template_vicreg --help`` and the pages ``ssl docs`` writes. Unknown keys
are errors (``StrictArgs``), so a user's typo is named, with the valid keys."""

from __future__ import annotations

from pydantic import Field, model_validator

from ssl_core import StrictArgs
from ssl_core.transforms import (
    ColorJitterArgs,
    GaussianBlurArgs,
    ImageSizeMixin,
    NormalizeArgs,
    RandomFlipArgs,
    RandomResizeArgs,
    SolarizeArgs,
)


class TemplateVICRegArgs(StrictArgs):
    """VICReg (Bardes et al. 2022): invariance, variance and covariance terms."""

    hidden_dim: int = Field(2048, gt=0, description="Width of the projector's hidden layer.")
    output_dim: int = Field(2048, gt=0, description="Size of the embeddings the loss compares.")
    invariance_weight: float = Field(
        25.0, ge=0, description="Weight of the mean squared distance between the two views."
    )
    variance_weight: float = Field(
        25.0, ge=0, description="Weight of the hinge keeping each dimension's std above 1."
    )
    covariance_weight: float = Field(
        1.0, ge=0, description="Weight of the off-diagonal covariance (decorrelation) term."
    )
    epsilon: float = Field(1e-4, gt=0, description="Added to the variance before its root.")

    @model_validator(mode="after")
    def _some_term(self) -> TemplateVICRegArgs:
        # Checked when the arguments are validated: before any image is read.
        if self.invariance_weight == 0:
            raise ValueError("invariance_weight must be above 0: the views would not be matched")
        return self


class TemplateVICRegTransformArgs(ImageSizeMixin):
    """Two views of each image, drawn independently with the same recipe."""

    reference_image_size = 224  # image_size "auto" stays at or below ImageNet's

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
    solarize: SolarizeArgs = Field(default_factory=SolarizeArgs, description="Random solarize.")
    normalize: NormalizeArgs = Field(
        default_factory=NormalizeArgs, description="Normalisation after augmentation."
    )
