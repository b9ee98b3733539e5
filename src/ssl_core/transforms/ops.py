"""The ops of the batched augmentation: the ``BatchedOp`` extension point and the built-in ops.

An op draws its random values per image, from that image's generator, and applies them to a
whole batch. A view's recipe lists its ops in the order they apply; a plugin adds an op by
subclassing ``BatchedOp`` and putting an instance in its recipe, and every path (per image,
batched on the CPU, finished on the GPU, decoded by nvJPEG) then draws and applies it alike.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from ssl_core.transforms.args import ColorJitterArgs, GaussianBlurArgs, RandomFlipArgs, SolarizeArgs
from ssl_core.transforms.functional import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    blur_kernel_size,
    gaussian_blur,
    grayscale,
    solarize,
)


class BatchedOp(ABC):
    """One augmentation op of the batched path. Its parameters are drawn per image from that
    image's generator (so an image's views are the same on every path, batch, worker and
    process), then applied to the whole batch.

    Instances travel to the loader workers, so they must pickle (a dataclass of plain values
    and argument schemas does).
    """

    params: ClassVar[tuple[str, ...]] = ()
    """Names of the values ``draw`` returns, in its order."""

    early_params: ClassVar[tuple[str, ...]] = ()
    """Names of the values ``draw_early`` returns. New ops leave this empty."""

    @abstractmethod
    def draw(self, rng: random.Random) -> Sequence[float]:
        """One image's values of ``params``, drawn from ``rng`` (use nothing else)."""

    def draw_early(self, rng: random.Random) -> Sequence[float]:
        """One image's values of ``early_params``, drawn before any op of the view calls
        ``draw``. Only ``ColorJitter`` needs this; a new op draws everything in ``draw``."""
        return ()

    @abstractmethod
    def apply(self, x: torch.Tensor, p: Mapping[str, torch.Tensor], masked: bool) -> torch.Tensor:
        """The op on ``x``, float N×3×H×W in [0, 1], which it may change in place and return.

        ``p[name]`` is an N-tensor per name of ``params`` and ``early_params``. ``masked``:
        pass it on to ``apply_drawn``.
        """


def apply_drawn(
    x: torch.Tensor,
    chosen: torch.Tensor,
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    values: torch.Tensor,
    masked: bool,
) -> torch.Tensor:
    """``fn(images, their values)`` on the images where ``chosen`` (bool N) is true.

    ``masked`` (on a GPU): ``fn`` runs on the whole batch and a mask keeps its result where
    chosen, so nothing waits for the host. Otherwise (on the CPU) only the chosen images are
    gathered and changed, which is less work.
    """
    if masked:
        return torch.where(chosen.view(-1, 1, 1, 1), fn(x.clone(), values), x)
    index = chosen.nonzero().flatten()
    if len(index):
        x[index] = fn(x[index], values[index])
    return x


@dataclass
class RandomFlip(BatchedOp):
    """Left-right and up-down flips, each with its own probability."""

    args: RandomFlipArgs
    params = ("horizontal", "vertical")

    def draw(self, rng: random.Random) -> Sequence[float]:
        return [
            float(rng.random() < self.args.horizontal_prob),
            float(rng.random() < self.args.vertical_prob),
        ]

    def apply(self, x: torch.Tensor, p: Mapping[str, torch.Tensor], masked: bool) -> torch.Tensor:
        horizontal, vertical = p["horizontal"], p["vertical"]
        x = apply_drawn(x, horizontal > 0, lambda img, _: img.flip(-1), horizontal, masked)
        return apply_drawn(x, vertical > 0, lambda img, _: img.flip(-2), vertical, masked)


# ColorJitter's four ops, by the number its drawn order uses for each.
JITTER_STEPS = (
    ("brightness", adjust_brightness),
    ("contrast", adjust_contrast),
    ("saturation", adjust_saturation),
    ("hue", adjust_hue),
)


@dataclass
class ColorJitter(BatchedOp):
    """Brightness, contrast, saturation and hue, in a random order per image (torchvision's
    ColorJitter), all with one probability."""

    args: ColorJitterArgs
    params = ("applied", "brightness", "contrast", "saturation", "hue")
    # The order is drawn before the other ops draw: SimCLR's views have always been drawn so,
    # and moving it would change every view of every seed.
    early_params = ("order_0", "order_1", "order_2", "order_3")

    def draw_early(self, rng: random.Random) -> Sequence[float]:
        order = list(range(len(JITTER_STEPS)))
        rng.shuffle(order)
        return [float(step) for step in order]

    def draw(self, rng: random.Random) -> Sequence[float]:
        a = self.args
        s = a.strength

        def around_one(amount: float) -> float:
            return rng.uniform(max(0.0, 1 - amount * s), 1 + amount * s)

        hue = min(a.hue * s, 0.5)
        return [
            float(rng.random() < a.prob),
            around_one(a.brightness),
            around_one(a.contrast),
            around_one(a.saturation),
            rng.uniform(-hue, hue),
        ]

    def apply(self, x: torch.Tensor, p: Mapping[str, torch.Tensor], masked: bool) -> torch.Tensor:
        applied = p["applied"] > 0
        for position in self.early_params:
            for step, (name, fn) in enumerate(JITTER_STEPS):
                x = apply_drawn(x, applied & (p[position] == step), fn, p[name], masked)
        return x


@dataclass
class RandomGrayscale(BatchedOp):
    """Grayscale (luma repeated on the three channels) with probability ``prob``."""

    prob: float
    params = ("applied",)

    def draw(self, rng: random.Random) -> Sequence[float]:
        return [float(rng.random() < self.prob)]

    def apply(self, x: torch.Tensor, p: Mapping[str, torch.Tensor], masked: bool) -> torch.Tensor:
        def gray(images: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
            return grayscale(images).expand(-1, 3, -1, -1)

        return apply_drawn(x, p["applied"] > 0, gray, p["applied"], masked)


@dataclass
class GaussianBlur(BatchedOp):
    """Gaussian blur with a sigma drawn per image; the kernel is ``args.kernel_size``, or a
    tenth of the view's size, made odd."""

    args: GaussianBlurArgs
    params = ("applied", "sigma")

    def draw(self, rng: random.Random) -> Sequence[float]:
        return [float(rng.random() < self.args.prob), rng.uniform(*self.args.sigmas)]

    def kernel_size(self, view_size: tuple[int, int]) -> int:
        kernel = self.args.kernel_size or blur_kernel_size(view_size)
        return kernel + 1 if kernel % 2 == 0 else kernel

    def apply(self, x: torch.Tensor, p: Mapping[str, torch.Tensor], masked: bool) -> torch.Tensor:
        kernel = self.kernel_size((x.shape[-2], x.shape[-1]))

        def blur(images: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
            return gaussian_blur(images, sigmas, kernel)

        return apply_drawn(x, p["applied"] > 0, blur, p["sigma"], masked)


@dataclass
class RandomSolarize(BatchedOp):
    """Solarization (pixels at or above the threshold inverted) with probability ``args.prob``."""

    args: SolarizeArgs
    params = ("applied",)

    def draw(self, rng: random.Random) -> Sequence[float]:
        return [float(rng.random() < self.args.prob)]

    def apply(self, x: torch.Tensor, p: Mapping[str, torch.Tensor], masked: bool) -> torch.Tensor:
        def invert_bright(images: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
            return solarize(images, self.args.threshold)

        return apply_drawn(x, p["applied"] > 0, invert_bright, p["applied"], masked)
