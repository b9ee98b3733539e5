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
from dataclasses import dataclass

import torch
import torch.nn.functional as F
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
    height: int, width: int, crop: RandomResizeArgs, generator: torch.Generator
) -> tuple[int, int, int, int]:
    """(top, left, h, w) as torchvision's RandomResizedCrop draws them."""
    area = height * width
    log_ratio = (math.log(crop.min_ratio), math.log(crop.max_ratio))
    for _ in range(10):
        u = torch.rand(3, generator=generator).tolist()
        target = area * (crop.min_scale + u[0] * (crop.max_scale - crop.min_scale))
        ratio = math.exp(log_ratio[0] + u[1] * (log_ratio[1] - log_ratio[0]))
        w = int(round(math.sqrt(target * ratio)))
        h = int(round(math.sqrt(target / ratio)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
            return top, left, h, w
    in_ratio = width / height  # fallback: the largest centred crop within the ratio range
    if in_ratio < crop.min_ratio:
        w, h = width, int(round(width / crop.min_ratio))
    elif in_ratio > crop.max_ratio:
        h, w = height, int(round(height * crop.max_ratio))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def sample_colour(recipe: ViewRecipe, generator: torch.Generator) -> list[float]:
    """[jitter?, brightness, contrast, saturation, hue, order×4, gray?, blur?, sigma]."""
    j = recipe.jitter
    s = j.strength
    u = torch.rand(8, generator=generator).tolist()

    def around_one(amount: float, v: float) -> float:
        low, high = max(0.0, 1 - amount * s), 1 + amount * s
        return low + v * (high - low)

    hue = min(j.hue * s, 0.5)
    order = torch.randperm(4, generator=generator).tolist()
    return [
        float(u[0] < j.prob),
        around_one(j.brightness, u[1]),
        around_one(j.contrast, u[2]),
        around_one(j.saturation, u[3]),
        -hue + u[4] * 2 * hue,
        *order,
        float(u[5] < recipe.gray_prob),
        float(u[6] < recipe.blur.prob),
        recipe.blur.sigmas[0] + u[7] * (recipe.blur.sigmas[1] - recipe.blur.sigmas[0]),
    ]


def crop_view(image: torch.Tensor, recipe: ViewRecipe, generator: torch.Generator) -> torch.Tensor:
    """Random resized crop and flips of one uint8 image; stays uint8."""
    _, height, width = image.shape
    top, left, h, w = sample_crop(height, width, recipe.crop, generator)
    out = TF.resized_crop(image, top, left, h, w, list(recipe.size), antialias=True)
    flips = torch.rand(2, generator=generator).tolist()
    if flips[0] < recipe.flip.horizontal_prob:
        out = out.flip(-1)
    if flips[1] < recipe.flip.vertical_prob:
        out = out.flip(-2)
    return out


@dataclass
class ViewBatch:
    """One view of every image of a batch, before the batched stage."""

    pixels: torch.Tensor  # N×3×H×W uint8
    params: torch.Tensor  # N×12 float, from sample_colour

    def to(self, device: torch.device, non_blocking: bool = False) -> ViewBatch:
        return ViewBatch(
            self.pixels.to(device, non_blocking=non_blocking),
            self.params.to(device, non_blocking=non_blocking),
        )

    def pin_memory(self) -> ViewBatch:
        return ViewBatch(self.pixels.pin_memory(), self.params.pin_memory())


def prepare_views(
    items: list[tuple[int, torch.Tensor]], recipes: list[ViewRecipe]
) -> list[ViewBatch]:
    """The per-image part: for each view, crops (uint8) and the drawn colour parameters."""
    pixels: list[list[torch.Tensor]] = [[] for _ in recipes]
    params: list[list[list[float]]] = [[] for _ in recipes]
    for seed, image in items:
        generator = torch.Generator().manual_seed(seed)
        image = to_rgb(image)
        for v, recipe in enumerate(recipes):
            pixels[v].append(crop_view(image, recipe, generator))
            params[v].append(sample_colour(recipe, generator))
    return [
        ViewBatch(torch.stack(p), torch.tensor(q, dtype=torch.float32))
        for p, q in zip(pixels, params, strict=True)
    ]


def grayscale(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    return (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(1)


def _per_image(values: torch.Tensor) -> torch.Tensor:
    return values.view(-1, 1, 1, 1)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (x * _per_image(factor)).clamp_(0, 1)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    mean = grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    f = _per_image(factor)
    return (f * x + (1 - f) * mean).clamp_(0, 1)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = _per_image(factor)
    return (f * x + (1 - f) * grayscale(x)).clamp_(0, 1)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue by ``shift`` (fraction of a turn) in HSV space."""
    r, g, b = x.unbind(1)
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    value = maxc
    delta = maxc - minc
    equal = delta == 0
    safe_max = torch.where(equal, torch.ones_like(maxc), maxc)
    sat = delta / safe_max
    safe_delta = torch.where(equal, torch.ones_like(delta), delta)
    rc, gc, bc = (maxc - r) / safe_delta, (maxc - g) / safe_delta, (maxc - b) / safe_delta
    hue = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    hue = torch.where(equal, torch.zeros_like(hue), hue)
    hue = ((hue / 6.0) % 1.0 + shift.view(-1, 1, 1)) % 1.0
    i = torch.floor(hue * 6.0)
    f = hue * 6.0 - i
    i = i.to(torch.int64) % 6
    p = (value * (1 - sat)).clamp(0, 1)
    q = (value * (1 - sat * f)).clamp(0, 1)
    t = (value * (1 - sat * (1 - f))).clamp(0, 1)
    choices = torch.stack(
        [
            torch.stack([value, t, p], 1),
            torch.stack([q, value, p], 1),
            torch.stack([p, value, t], 1),
            torch.stack([p, q, value], 1),
            torch.stack([t, p, value], 1),
            torch.stack([value, p, q], 1),
        ],
        dim=0,
    )
    index = i.unsqueeze(0).unsqueeze(2).expand(1, -1, 3, -1, -1)
    return choices.gather(0, index).squeeze(0)


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


def finish_views(batch: ViewBatch, recipe: ViewRecipe) -> torch.Tensor:
    """The batched stage: uint8 crops -> colour jitter, grayscale, blur -> normalised float."""
    x = batch.pixels.float().div_(255)
    p = batch.params
    jitter = p[:, 0] > 0
    order = p[:, 5:9].long()
    for position in range(4):
        for op, fn in COLOUR_OPS.items():
            chosen = (jitter & (order[:, position] == op)).nonzero().flatten()
            if len(chosen):
                x[chosen] = fn(x[chosen], p[chosen, 1 + op])
    gray = (p[:, 9] > 0).nonzero().flatten()
    if len(gray):
        x[gray] = grayscale(x[gray]).expand(-1, 3, -1, -1)
    blur = (p[:, 10] > 0).nonzero().flatten()
    if len(blur):
        x[blur] = gaussian_blur(x[blur], p[blur, 11], recipe.kernel_size)
    mean = torch.tensor(recipe.normalize.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(recipe.normalize.std, device=x.device).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std)


class BatchedViews:
    """A transform's batched form: ``prepare`` in the loader workers, ``finish`` wherever the
    batch is (worker on CPU runs, GPU otherwise)."""

    def __init__(self, recipes: list[ViewRecipe]) -> None:
        self.recipes = recipes

    def prepare(self, items: list[tuple[int, torch.Tensor]]) -> list[ViewBatch]:
        return prepare_views(items, self.recipes)

    def finish(self, views: list[ViewBatch]) -> list[torch.Tensor]:
        return [finish_views(v, r) for v, r in zip(views, self.recipes, strict=True)]
