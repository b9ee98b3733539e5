"""BYOL's argument schemas (pydantic only: importable without torch).

Defaults follow the BYOL paper (Grill et al. 2020) where it and lightly's implementation
agree; where they differ, the field's description says which one is used.
"""

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


class BYOLArgs(StrictArgs):
    """BYOL method arguments."""

    projection_hidden_dim: int = Field(
        4096, gt=0, description="Hidden width of the projection MLP (paper and lightly: 4096)."
    )
    projection_dim: int = Field(
        256, gt=0, description="Output size of the projection and prediction MLPs (256)."
    )
    prediction_hidden_dim: int = Field(
        4096, gt=0, description="Hidden width of the prediction MLP (paper and lightly: 4096)."
    )
    momentum_start: float = Field(
        0.99,
        ge=0,
        le=1,
        description="Target network momentum τ at the first step; it rises along a cosine to "
        "momentum_end at the last. 0.99 as lightly and the paper's batch-256 runs use; the "
        "paper's 0.996 is for batch 4096.",
    )
    momentum_end: float = Field(
        1.0, ge=0, le=1, description="Target network momentum τ at the end of the run."
    )

    @model_validator(mode="after")
    def _rising(self) -> BYOLArgs:
        if self.momentum_end < self.momentum_start:
            raise ValueError("momentum_end must not be below momentum_start")
        return self


class BYOLViewArgs(StrictArgs):
    """What differs between BYOL's two views."""

    gaussian_blur: GaussianBlurArgs = Field(
        default_factory=GaussianBlurArgs, description="Random Gaussian blur of this view."
    )
    solarize: SolarizeArgs = Field(
        default_factory=SolarizeArgs, description="Random solarization of this view."
    )


class BYOLTransformArgs(ImageSizeMixin):
    """Two views with the paper's asymmetric blur and solarization."""

    reference_image_size = 224  # the paper's ImageNet views; image_size "auto" stays at or below

    random_resize: RandomResizeArgs = Field(
        default_factory=RandomResizeArgs, description="Random resized crop."
    )
    random_flip: RandomFlipArgs = Field(default_factory=RandomFlipArgs, description="Random flips.")
    color_jitter: ColorJitterArgs = Field(
        default_factory=lambda: ColorJitterArgs(
            prob=0.8, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1
        ),
        description="Random color jitter (BYOL: 0.4, 0.4, 0.2, 0.1 with probability 0.8).",
    )
    random_gray_scale: float = Field(
        0.2, ge=0, le=1, description="Probability of converting a view to grayscale."
    )
    view_1: BYOLViewArgs = Field(
        default_factory=lambda: BYOLViewArgs(
            gaussian_blur=GaussianBlurArgs(prob=1.0), solarize=SolarizeArgs(prob=0.0)
        ),
        description="The first view: always blurred, never solarized.",
    )
    view_2: BYOLViewArgs = Field(
        default_factory=lambda: BYOLViewArgs(
            gaussian_blur=GaussianBlurArgs(prob=0.1), solarize=SolarizeArgs(prob=0.2)
        ),
        description="The second view: rarely blurred, sometimes solarized.",
    )
    normalize: NormalizeArgs = Field(
        default_factory=NormalizeArgs, description="Normalisation after augmentation."
    )
