"""DINO's argument schemas (pydantic only: importable without torch).

Defaults follow the DINO paper (Caron et al. 2021) and its official ``main_dino.py``; where
LightlyTrain's DINO differs, the field's description says how.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

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


class DINOArgs(StrictArgs):
    """DINO method arguments."""

    hidden_dim: int = Field(2048, gt=0, description="Hidden width of the head's 3-layer MLP.")
    bottleneck_dim: int = Field(
        256, gt=0, description="Width of the L2-normalised bottleneck before the last layer."
    )
    output_dim: int | Literal["auto"] = Field(
        "auto",
        description="Size of the softmax the teacher and student are compared on. auto: by the "
        "images per epoch, as LightlyTrain does: 1024 up to 20k images, 2048 up to 50k, 4096 "
        "up to 100k, 16384 up to 200k, 32768 up to 500k, else the paper's 65536.",
    )
    norm_last_layer: bool = Field(
        True,
        description="Fix the norm of each row of the weight-normalised last layer to 1 (the "
        "paper: more stable; false lets it learn).",
    )
    freeze_last_layer_epochs: int = Field(
        1,
        ge=0,
        description="Epochs at the start during which the last layer is not updated (the "
        "paper: 1; LightlyTrain freezes it for 1250 steps instead).",
    )
    student_temp: float = Field(0.1, gt=0, description="Student softmax temperature.")
    teacher_temp: float = Field(
        0.07,
        gt=0,
        description="Teacher softmax temperature after warmup (the paper: 0.07 for ResNets and "
        "ViT-S; LightlyTrain lowers it to 0.02–0.07 by dataset size).",
    )
    warmup_teacher_temp: float = Field(
        0.04, gt=0, description="Teacher softmax temperature at the first step."
    )
    warmup_teacher_temp_epochs: float = Field(
        30,
        ge=0,
        description="Epochs of linear warmup from warmup_teacher_temp to teacher_temp, capped "
        "at warmup_teacher_temp_max_fraction of the run (LightlyTrain: 37500 steps, same cap).",
    )
    warmup_teacher_temp_max_fraction: float = Field(
        0.3,
        ge=0,
        le=1,
        description="The teacher temperature warmup takes at most this fraction of the run, so "
        "short runs reach teacher_temp (0.3 as LightlyTrain).",
    )
    center_momentum: float = Field(
        0.9, ge=0, le=1, description="Momentum of the centre subtracted from teacher outputs."
    )
    momentum_start: float = Field(
        0.996,
        ge=0,
        le=1,
        description="Teacher EMA momentum at the first step, rising along a cosine to "
        "momentum_end (LightlyTrain lowers it to 0.99 for datasets under 20k images).",
    )
    momentum_end: float = Field(1.0, ge=0, le=1, description="Teacher EMA momentum at the end.")
    weight_decay_end: float = Field(
        0.4,
        ge=0,
        description="Weight decay at the end of the run: it rises along a cosine from "
        "optim_args.weight_decay (0.04) to this (LightlyTrain keeps it constant by default).",
    )
    export: Literal["teacher", "student"] = Field(
        "teacher",
        description="Which backbone exported_models/ holds: the teacher (the paper evaluates "
        "it) or the student.",
    )

    @model_validator(mode="after")
    def _rising(self) -> DINOArgs:
        if self.momentum_end < self.momentum_start:
            raise ValueError("momentum_end must not be below momentum_start")
        return self


class DINOViewArgs(StrictArgs):
    """What differs between DINO's kinds of view."""

    gaussian_blur: GaussianBlurArgs = Field(
        default_factory=GaussianBlurArgs, description="Random Gaussian blur of this view."
    )
    solarize: SolarizeArgs = Field(
        default_factory=SolarizeArgs, description="Random solarization of this view."
    )


def auto_output_dim(images_per_epoch: int) -> int:
    """LightlyTrain's rule: a smaller softmax for smaller datasets (65536 is for ImageNet)."""
    for limit, dim in ((20_000, 1024), (50_000, 2048), (100_000, 4096), (200_000, 16384)):
        if images_per_epoch <= limit:
            return dim
    return 32768 if images_per_epoch <= 500_000 else 65536


def auto_local_image_size(global_size: tuple[int, int]) -> tuple[int, int]:
    """The paper's 96/224 of the global size, rounded to a multiple of 16 (a whole number
    of patches for 16-pixel ViTs; any size suits a ResNet), at least 16."""
    height, width = (max(16, round(side * 96 / 224 / 16) * 16) for side in global_size)
    return height, width


class DINOTransformArgs(ImageSizeMixin):
    """Two global views of image_size and several smaller local views (multi-crop)."""

    reference_image_size = 224  # the paper's global crops on ImageNet

    global_random_resize: RandomResizeArgs = Field(
        default_factory=lambda: RandomResizeArgs(min_scale=0.14, max_scale=1.0),
        description="Random resized crop of the two global views (scale 0.14–1 as the paper's "
        "ResNet runs and LightlyTrain; its ViT runs use 0.4–1).",
    )
    num_local_views: int = Field(
        6, ge=0, description="Number of local views (the paper: 6 to 10; LightlyTrain: 6)."
    )
    local_image_size: tuple[int, int] | Literal["auto"] = Field(
        "auto",
        description="Size of the local views: (height, width), one number, or auto: 96/224 of "
        "image_size rounded to a multiple of 16, at least 16 (96 for 224). A ViT needs a "
        "multiple of its patch (or model_args dynamic_img_pad=true).",
    )
    local_random_resize: RandomResizeArgs = Field(
        default_factory=lambda: RandomResizeArgs(min_scale=0.05, max_scale=0.14),
        description="Random resized crop of the local views (scale 0.05–0.14).",
    )
    random_flip: RandomFlipArgs = Field(default_factory=RandomFlipArgs, description="Random flips.")
    color_jitter: ColorJitterArgs = Field(
        default_factory=lambda: ColorJitterArgs(
            prob=0.8, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1
        ),
        description="Random color jitter (DINO: 0.4, 0.4, 0.2, 0.1 with probability 0.8).",
    )
    random_gray_scale: float = Field(
        0.2, ge=0, le=1, description="Probability of converting a view to grayscale."
    )
    global_view_1: DINOViewArgs = Field(
        default_factory=lambda: DINOViewArgs(
            gaussian_blur=GaussianBlurArgs(prob=1.0), solarize=SolarizeArgs(prob=0.0)
        ),
        description="The first global view: always blurred, never solarized.",
    )
    global_view_2: DINOViewArgs = Field(
        default_factory=lambda: DINOViewArgs(
            gaussian_blur=GaussianBlurArgs(prob=0.1), solarize=SolarizeArgs(prob=0.2)
        ),
        description="The second global view: rarely blurred, sometimes solarized.",
    )
    local_view: DINOViewArgs = Field(
        default_factory=lambda: DINOViewArgs(
            gaussian_blur=GaussianBlurArgs(prob=0.5), solarize=SolarizeArgs(prob=0.0)
        ),
        description="Every local view: blurred half the time, never solarized.",
    )
    normalize: NormalizeArgs = Field(
        default_factory=NormalizeArgs, description="Normalisation after augmentation."
    )

    @field_validator("local_image_size", mode="before")
    @classmethod
    def _local_square(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
            return (int(value), int(value))
        return value

    @field_validator("local_image_size")
    @classmethod
    def _local_producible(cls, value: tuple[int, int] | str) -> tuple[int, int] | str:
        if isinstance(value, tuple) and min(value) < 2:
            raise ValueError("each side must be at least 2 px (the blur pads by reflection)")
        return value

    @model_validator(mode="after")
    def _local_blur_fits(self) -> DINOTransformArgs:
        """The local views are smaller than image_size, which the mixin checks an explicit
        blur kernel against: the kernel pads each view by half its size."""
        kernel = self.local_view.gaussian_blur.kernel_size
        if kernel is None or self.num_local_views == 0:
            return self
        if isinstance(self.local_image_size, str) and isinstance(self.image_size, str):
            return self  # checked again once image_size "auto" is resolved
        side = min(self.local_view_size)
        pad = (kernel + 1 if kernel % 2 == 0 else kernel) // 2
        if pad >= side:
            raise ValueError(
                f"local_view.gaussian_blur.kernel_size {kernel} pads each local view by {pad} "
                f"px, which needs local views of at least {pad + 1} px, but they are {side} px: "
                f"lower the kernel_size (or leave it None) or raise local_image_size"
            )
        return self

    def resolve_auto(self) -> DINOTransformArgs:
        """local_image_size "auto" as the number it stands for, once image_size is known."""
        if self.local_image_size != "auto" or self.image_size == "auto":
            return self
        return self.model_copy(update={"local_image_size": self.local_view_size})

    @property
    def local_view_size(self) -> tuple[int, int]:
        """``local_image_size`` as (height, width), "auto" derived from ``view_size``."""
        if isinstance(self.local_image_size, str):
            return auto_local_image_size(self.view_size)
        return self.local_image_size
