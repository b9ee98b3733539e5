"""Batched augmentation: per-image geometry on uint8, then colour, grayscale, blur and
normalisation for the whole batch at once (in a loader worker, or on the GPU).

Every random choice of a view is drawn from a generator seeded for that image, so an
image's views do not depend on which batch, worker or process it lands in. The colour
ops follow torchvision's definitions (ColorJitter applies its four ops in a random order
per image; grayscale uses ITU-R 601 luma; blur is a separable Gaussian with reflect
padding) and are tested against torchvision's functional ops image by image.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align
from torchvision.transforms.v2 import functional as TF

from ssl_core.transforms.args import (
    ColorJitterArgs,
    GaussianBlurArgs,
    NormalizeArgs,
    RandomFlipArgs,
    RandomResizeArgs,
)
from ssl_core.transforms.ops import blur_kernel_size, to_rgb

LUMA = (0.2989, 0.587, 0.114)
BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)


@dataclass
class ViewRecipe:
    """The settings of one view's augmentation (SimCLR uses one recipe for both views)."""

    size: tuple[int, int]
    crop: RandomResizeArgs
    flip: RandomFlipArgs
    jitter: ColorJitterArgs
    gray_prob: float
    blur: GaussianBlurArgs
    normalize: NormalizeArgs

    @property
    def kernel_size(self) -> int:
        kernel = self.blur.kernel_size or blur_kernel_size(self.size)
        return kernel + 1 if kernel % 2 == 0 else kernel


def sample_crop(
    height: int, width: int, crop: RandomResizeArgs, rng: random.Random
) -> tuple[int, int, int, int]:
    """(top, left, h, w) as torchvision's RandomResizedCrop draws them."""
    area = height * width
    log_ratio = (math.log(crop.min_ratio), math.log(crop.max_ratio))
    for _ in range(10):
        target = area * rng.uniform(crop.min_scale, crop.max_scale)
        ratio = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * ratio)))
        h = int(round(math.sqrt(target / ratio)))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    in_ratio = width / height  # fallback: the largest centred crop within the ratio range
    if in_ratio < crop.min_ratio:
        w, h = width, int(round(width / crop.min_ratio))
    elif in_ratio > crop.max_ratio:
        h, w = height, int(round(height * crop.max_ratio))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


# Layout of a view's drawn parameters (one row per image).
H_FLIP, V_FLIP, JITTER, FACTORS, ORDER, GRAY, BLUR, SIGMA = 0, 1, 2, 3, 7, 11, 12, 13
NUM_PARAMS = 14


def sample_params(recipe: ViewRecipe, rng: random.Random) -> list[float]:
    """Flips, jitter on/off, its four factors and order, grayscale, blur and its sigma."""
    j = recipe.jitter
    s = j.strength

    def around_one(amount: float) -> float:
        return rng.uniform(max(0.0, 1 - amount * s), 1 + amount * s)

    hue = min(j.hue * s, 0.5)
    order = [BRIGHTNESS, CONTRAST, SATURATION, HUE]
    rng.shuffle(order)
    return [
        float(rng.random() < recipe.flip.horizontal_prob),
        float(rng.random() < recipe.flip.vertical_prob),
        float(rng.random() < j.prob),
        around_one(j.brightness),
        around_one(j.contrast),
        around_one(j.saturation),
        rng.uniform(-hue, hue),
        *order,
        float(rng.random() < recipe.gray_prob),
        float(rng.random() < recipe.blur.prob),
        rng.uniform(*recipe.blur.sigmas),
    ]


@dataclass
class PreparedBatch:
    """A batch after the per-image stage: uint8 pixels and, per view, the drawn parameters.

    When every image has one size, ``images`` holds them unchanged and ``boxes`` the crop of
    each view (cropping happens, batched, in ``finish``); otherwise ``crops`` holds each
    view's crops, already resized.
    """

    params: list[torch.Tensor]  # per view: N×NUM_PARAMS
    images: torch.Tensor | None = None  # N×3×H×W uint8
    boxes: list[torch.Tensor] | None = None  # per view: N×4 (x1, y1, x2, y2)
    crops: list[torch.Tensor] | None = None  # per view: N×3×S×S uint8

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> PreparedBatch:
        return PreparedBatch(
            params=[fn(p) for p in self.params],
            images=None if self.images is None else fn(self.images),
            boxes=None if self.boxes is None else [fn(b) for b in self.boxes],
            crops=None if self.crops is None else [fn(c) for c in self.crops],
        )

    def to(self, device: torch.device, non_blocking: bool = False) -> PreparedBatch:
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> PreparedBatch:
        return self._map(lambda t: t.pin_memory())


def draw_views(
    seeds: list[int], sizes: list[tuple[int, int]], recipes: list[ViewRecipe]
) -> tuple[list[list[tuple[int, int, int, int]]], list[list[list[float]]]]:
    """Per view, every image's crop (top, left, h, w) and parameters, drawn from a generator
    seeded for that image: the same image and seed give the same views on any path."""
    boxes: list[list[tuple[int, int, int, int]]] = [[] for _ in recipes]
    params: list[list[list[float]]] = [[] for _ in recipes]
    for seed, (height, width) in zip(seeds, sizes, strict=True):
        rng = random.Random(seed)
        for v, recipe in enumerate(recipes):
            boxes[v].append(sample_crop(height, width, recipe.crop, rng))
            params[v].append(sample_params(recipe, rng))
    return boxes, params


def box_tensor(crops: list[tuple[int, int, int, int]]) -> torch.Tensor:
    """(top, left, h, w) crops as roi_align's N×4 (x1, y1, x2, y2) boxes."""
    return torch.tensor(
        [(left, top, left + w, top + h) for top, left, h, w in crops], dtype=torch.float32
    )


def prepare_views(
    items: list[tuple[int, torch.Tensor]], recipes: list[ViewRecipe]
) -> PreparedBatch:
    """The per-image part: draw every view's parameters; crop here only if sizes differ."""
    images = [to_rgb(image) for _, image in items]
    sizes = [(int(image.shape[1]), int(image.shape[2])) for image in images]
    boxes, params = draw_views([seed for seed, _ in items], sizes, recipes)
    param_tensors = [torch.tensor(p, dtype=torch.float32) for p in params]
    if len({image.shape for image in images}) == 1:
        return PreparedBatch(
            params=param_tensors,
            images=torch.stack(images),
            boxes=[box_tensor(view) for view in boxes],
        )
    crops = [
        torch.stack(
            [
                TF.resized_crop(image, *box, list(recipe.size), antialias=True)
                for image, box in zip(images, view, strict=True)
            ]
        )
        for view, recipe in zip(boxes, recipes, strict=True)
    ]
    return PreparedBatch(params=param_tensors, crops=crops)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    return (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(1)


def _per_image(values: torch.Tensor) -> torch.Tensor:
    return values.view(-1, 1, 1, 1)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """In place: x · factor, clamped to [0, 1]."""
    return x.mul_(_per_image(factor)).clamp_(0, 1)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """In place: blend with the image's mean gray level, mean + factor · (x - mean)."""
    mean = grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    return x.sub_(mean).mul_(_per_image(factor)).add_(mean).clamp_(0, 1)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """In place: blend with the image's grayscale version."""
    gray = grayscale(x)
    return x.sub_(gray).mul_(_per_image(factor)).add_(gray).clamp_(0, 1)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue by ``shift`` (fraction of a turn) in HSV space, as torchvision does."""
    r, g, b = x.unbind(1)
    value = torch.maximum(torch.maximum(r, g), b)  # faster than a max over the channel dim
    delta = value - torch.minimum(torch.minimum(r, g), b)
    gray = delta == 0
    sat = delta / torch.where(gray, torch.ones_like(value), value)
    delta = torch.where(gray, torch.ones_like(delta), delta)
    hue = torch.where(
        value == r,
        (g - b) / delta,
        torch.where(value == g, 2.0 + (b - r) / delta, 4.0 + (r - g) / delta),
    )
    hue = torch.where(gray, torch.zeros_like(hue), hue)
    hue = (hue / 6.0 + shift.view(-1, 1, 1)).remainder(1.0) * 6.0
    # HSV -> RGB without branches: channel c is v - v·s·clamp(min(k, 4 - k), 0, 1) with
    # k = (n_c + 6h) mod 6 and n = 5, 3, 1 for R, G, B.
    n = torch.tensor([5.0, 3.0, 1.0], device=x.device).view(1, 3, 1, 1)
    k = (n + hue.unsqueeze(1)).remainder(6.0)
    weight = torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)
    return value.unsqueeze(1) * (1.0 - sat.unsqueeze(1) * weight)


COLOUR_OPS = {
    BRIGHTNESS: adjust_brightness,
    CONTRAST: adjust_contrast,
    SATURATION: adjust_saturation,
    HUE: adjust_hue,
}


def gaussian_kernels(sigmas: torch.Tensor, kernel_size: int) -> torch.Tensor:
    half = (kernel_size - 1) / 2
    x = torch.linspace(-half, half, kernel_size, device=sigmas.device)
    pdf = torch.exp(-0.5 * (x.view(1, -1) / sigmas.view(-1, 1)) ** 2)
    return pdf / pdf.sum(dim=1, keepdim=True)


def gaussian_blur(x: torch.Tensor, sigmas: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Each image blurred with its own sigma: one grouped separable convolution."""
    n, c, h, w = x.shape
    kernels = gaussian_kernels(sigmas, kernel_size).repeat_interleave(c, dim=0)  # (n·c)×K
    pad = kernel_size // 2
    flat = x.reshape(1, n * c, h, w)
    flat = F.pad(flat, (pad, pad, pad, pad), mode="reflect")
    flat = F.conv2d(flat, kernels.view(n * c, 1, 1, kernel_size), groups=n * c)
    flat = F.conv2d(flat, kernels.view(n * c, 1, kernel_size, 1), groups=n * c)
    return flat.view(n, c, h, w)


def finish_views(
    pixels: torch.Tensor, params: torch.Tensor, recipe: ViewRecipe, masked: bool | None = None
) -> torch.Tensor:
    """The batched stage on float pixels in [0, 1] (N×3×S×S): flips, colour jitter,
    grayscale, blur, then normalisation.

    Each op touches only the images that drew it. On the CPU those images are gathered
    (less work); on a GPU (``masked``, the default there) every op runs on the whole batch
    and a mask keeps its result where drawn, so the stage needs no host synchronisation.
    """
    if masked is None:
        masked = pixels.device.type != "cpu"
    x = pixels

    def apply(
        chosen: torch.Tensor,
        fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        values: torch.Tensor,
    ) -> torch.Tensor:
        if masked:
            return torch.where(chosen.view(-1, 1, 1, 1), fn(x.clone(), values), x)
        index = chosen.nonzero().flatten()
        if len(index):
            x[index] = fn(x[index], values[index])
        return x

    p = params
    x = apply(p[:, H_FLIP] > 0, lambda img, _: img.flip(-1), p[:, H_FLIP])
    x = apply(p[:, V_FLIP] > 0, lambda img, _: img.flip(-2), p[:, V_FLIP])
    jitter = p[:, JITTER] > 0
    order = p[:, ORDER : ORDER + 4].long()
    for position in range(4):
        for op, fn in COLOUR_OPS.items():
            x = apply(jitter & (order[:, position] == op), fn, p[:, FACTORS + op])
    x = apply(p[:, GRAY] > 0, lambda img, _: grayscale(img).expand(-1, 3, -1, -1), p[:, GRAY])
    x = apply(
        p[:, BLUR] > 0,
        lambda img, sigma: gaussian_blur(img, sigma, recipe.kernel_size),
        p[:, SIGMA],
    )
    mean = torch.tensor(recipe.normalize.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(recipe.normalize.std, device=x.device).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std)


def crop_batch(images: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Every image's crop box resized to ``size`` in one call: bilinear, averaging over
    several samples per output pixel where the crop is larger (like antialiasing)."""
    indices = torch.arange(len(boxes), dtype=boxes.dtype, device=boxes.device).unsqueeze(1)
    return roi_align(images, torch.cat([indices, boxes], dim=1), list(size), aligned=True)


class BatchedViews:
    """A transform's batched form: ``prepare`` in the loader workers, ``finish`` wherever the
    batch is (worker on CPU runs, GPU otherwise)."""

    def __init__(self, recipes: list[ViewRecipe]) -> None:
        self.recipes = recipes

    def prepare(self, items: list[tuple[int, torch.Tensor]]) -> PreparedBatch:
        return prepare_views(items, self.recipes)

    def finish(self, batch: PreparedBatch) -> list[torch.Tensor]:
        crops = []
        images = batch.images.float().div_(255) if batch.images is not None else None
        for v, recipe in enumerate(self.recipes):
            if images is not None and batch.boxes is not None:
                crops.append(crop_batch(images, batch.boxes[v], recipe.size))
            else:
                assert batch.crops is not None
                crops.append(batch.crops[v].float().div_(255))
        return self.finish_crops(crops, batch.params)

    def finish_crops(
        self, crops: list[torch.Tensor], params: list[torch.Tensor]
    ) -> list[torch.Tensor]:
        """Per view, the cropped float pixels in [0, 1] and the drawn parameters."""
        return [
            finish_views(pixels, view_params, recipe)
            for pixels, view_params, recipe in zip(crops, params, self.recipes, strict=True)
        ]
