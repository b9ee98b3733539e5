"""Argument schemas of the core augmentation ops (pydantic only, no torch).

Methods compose these into their own transform schema, so the same key means the same thing
in every method: ``transform_args.color_jitter.prob``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

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
        None, ge=1, description="Odd kernel size; None: about a tenth of the image size."
    )

    @field_validator("sigmas")
    @classmethod
    def _positive_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 < low <= high:
            # A sigma of 0 divides by zero in the kernel: the views would be NaN.
            raise ValueError(f"must be a range low,high with 0 < low <= high, got {low},{high}")
        return value


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


# The Gaussian blur pads a view by half its kernel with reflection, which needs more pixels
# than the padding: 2 px for the smallest kernel (3). Crops and ResNets take even 1 px.
MIN_IMAGE_SIZE = 2
# "auto" never goes below this: stride-32 backbones with unpadded downsampling (ConvNeXt)
# need 32 px, and CIFAR's images are 32 px.
AUTO_MIN_IMAGE_SIZE = 32


def _image_size_description(reference: int) -> str:
    return (
        "Output size of each view: (height, width), one number, or auto: the median shorter "
        f"side of a sample of the images, at most {reference} (the method's reference size), "
        f"rounded down to a multiple of 8, at least {AUTO_MIN_IMAGE_SIZE}; a backbone built "
        "for one size (a ViT) gets that size. train.log and config.json record the choice."
    )


class ImageSizeMixin(StrictArgs):
    reference_image_size: ClassVar[int] = 224
    """The method's reference view size (its paper's, on ImageNet): "auto" never exceeds
    it. A method's transform schema sets its own."""

    image_size: tuple[int, int] | Literal["auto"] = Field(
        "auto", description=_image_size_description(224)
    )

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # The help and docs state this schema's own reference size (each class has its copy).
        cls.model_fields["image_size"].description = _image_size_description(
            cls.reference_image_size
        )

    @field_validator("image_size", mode="before")
    @classmethod
    def _square(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        if isinstance(value, int) or (
            isinstance(value, str) and value.strip().lstrip("+-").isdigit()
        ):
            return as_size(int(value))
        if isinstance(value, str):
            raise PydanticCustomError(
                "image_size_type", "give a size in pixels such as 32, height,width, or auto"
            )
        return value

    @field_validator("image_size")
    @classmethod
    def _producible(cls, value: tuple[int, int] | str) -> tuple[int, int] | str:
        if isinstance(value, tuple) and min(value) < MIN_IMAGE_SIZE:
            raise PydanticCustomError(
                "image_size_too_small",
                "each side must be at least {minimum} px (the Gaussian blur pads a view by 1 "
                "px with reflection, which needs 2 px); give e.g. 32, or auto to take the "
                "size from the images",
                {"minimum": MIN_IMAGE_SIZE},
            )
        return value

    @model_validator(mode="after")
    def _blur_fits(self) -> ImageSizeMixin:
        """An explicit blur kernel pads each view by half its size: the view must be larger."""
        if isinstance(self.image_size, str):
            return self  # checked again once "auto" is resolved
        side = min(self.image_size)
        for key, blur in _blur_args(self):
            if blur.kernel_size is None:
                continue
            kernel = blur.kernel_size + 1 if blur.kernel_size % 2 == 0 else blur.kernel_size
            if kernel // 2 >= side:
                raise PydanticCustomError(
                    "blur_kernel_too_large",
                    f"{key}.kernel_size {blur.kernel_size} pads each view by {kernel // 2} px, "
                    f"which needs views of at least {kernel // 2 + 1} px, but image_size is "
                    f"{self.image_size[0]}×{self.image_size[1]}: lower the kernel_size (or "
                    f"leave it None: a tenth of the view) or raise image_size",
                )
        return self

    @property
    def view_size(self) -> tuple[int, int]:
        """``image_size`` as (height, width); "auto" must have been resolved (a run does
        that from the data before building the transform)."""
        if isinstance(self.image_size, str):
            raise ValueError(
                'image_size "auto" is chosen from the images when a run starts; to build '
                "this transform on its own, give a number, e.g. image_size=224"
            )
        return self.image_size


def _blur_args(args: StrictArgs, prefix: str = "") -> list[tuple[str, GaussianBlurArgs]]:
    """Every GaussianBlurArgs in ``args``, nested schemas included, with its dotted key."""
    found = []
    for name in type(args).model_fields:
        value = getattr(args, name)
        if isinstance(value, GaussianBlurArgs):
            found.append((f"{prefix}{name}", value))
        elif isinstance(value, StrictArgs):
            found.extend(_blur_args(value, f"{prefix}{name}."))
    return found
