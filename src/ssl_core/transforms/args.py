"""Argument schemas of the core augmentation ops (pydantic only, no torch).

Methods compose these into their own transform schema, so the same key means the same thing
in every method: ``transform_args.color_jitter.prob``.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from ssl_core.args import StrictArgs

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class RandomResizeArgs(StrictArgs):
    min_scale: float = Field(0.08, gt=0, le=1, description="Smallest crop area, as a fraction.")
    max_scale: float = Field(1.0, gt=0, le=1, description="Largest crop area, as a fraction.")
    min_ratio: float = Field(3 / 4, gt=0, description="Smallest crop aspect ratio (w/h).")
    max_ratio: float = Field(4 / 3, gt=0, description="Largest crop aspect ratio (w/h).")


class RandomFlipArgs(StrictArgs):
    horizontal_prob: float = Field(0.5, ge=0, le=1, description="Probability of a left-right flip.")
    vertical_prob: float = Field(0.0, ge=0, le=1, description="Probability of an up-down flip.")


class ColorJitterArgs(StrictArgs):
    prob: float = Field(0.8, ge=0, le=1, description="Probability of applying color jitter.")
    strength: float = Field(
        1.0, ge=0, description="Multiplier of brightness, contrast, saturation and hue."
    )
    brightness: float = Field(0.8, ge=0, description="Brightness jitter (before strength).")
    contrast: float = Field(0.8, ge=0, description="Contrast jitter (before strength).")
    saturation: float = Field(0.8, ge=0, description="Saturation jitter (before strength).")
    hue: float = Field(0.2, ge=0, le=0.5, description="Hue jitter (before strength), at most 0.5.")


class GaussianBlurArgs(StrictArgs):
    prob: float = Field(0.5, ge=0, le=1, description="Probability of a Gaussian blur.")
    sigmas: tuple[float, float] = Field(
        (0.1, 2.0), description="Range the blur sigma is drawn from, in pixels."
    )
    kernel_size: int | None = Field(
        None, description="Odd kernel size; None: about a tenth of the image size."
    )


class SolarizeArgs(StrictArgs):
    prob: float = Field(0.0, ge=0, le=1, description="Probability of solarizing a view.")
    threshold: float = Field(
        0.5,
        ge=0,
        le=1,
        description=(
            "Pixels at or above this value (on a 0–1 scale; 0.5 ≈ 128 of 255) are inverted."
        ),
    )


class NormalizeArgs(StrictArgs):
    mean: tuple[float, float, float] = Field(IMAGENET_MEAN, description="Per-channel mean (RGB).")
    std: tuple[float, float, float] = Field(IMAGENET_STD, description="Per-channel std (RGB).")


def as_size(value: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``224`` -> ``(224, 224)``; ``(h, w)`` stays."""
    if isinstance(value, int):
        return (value, value)
    return (int(value[0]), int(value[1]))


class ImageSizeMixin(StrictArgs):
    image_size: tuple[int, int] = Field(
        (224, 224), description="Output size of each view, (height, width) or one number."
    )

    @field_validator("image_size", mode="before")
    @classmethod
    def _square(cls, value: object) -> object:
        if isinstance(value, (int, str)) and str(value).strip().isdigit():
            return as_size(int(value))
        return value
