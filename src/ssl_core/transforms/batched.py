"""Batched augmentation: per-image geometry on uint8, then a view's ops (flips, colour,
grayscale, blur, solarization or a plugin's own) and normalisation for the whole batch at once,
in a loader worker or on the GPU.

Every random choice of a view is drawn from a generator seeded for that image, by the one
function ``draw_views``, whichever path the batch takes; so an image's views do not depend on
which path, batch, worker or process it lands in.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import final

import torch
from torchvision.ops import roi_align
from torchvision.transforms.v2 import functional as TF

from ssl_core.transforms.args import NormalizeArgs, RandomResizeArgs
from ssl_core.transforms.functional import to_rgb
from ssl_core.transforms.ops import BatchedOp

Box = tuple[int, int, int, int]  # top, left, height, width


def sample_crop(height: int, width: int, crop: RandomResizeArgs, rng: random.Random) -> Box:
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


@dataclass
class ViewRecipe:
    """One view's augmentation: a random resized crop to ``size``, ``ops`` in order, then
    normalisation. A row of drawn values holds each op's ``params`` then ``early_params``,
    op after op (``column`` finds one)."""

    size: tuple[int, int]
    crop: RandomResizeArgs
    ops: Sequence[BatchedOp]
    normalize: NormalizeArgs = field(default_factory=NormalizeArgs)

    def __post_init__(self) -> None:
        if isinstance(self.size, str):  # a plugin passed image_size before a run resolved it
            raise ValueError(
                f'ViewRecipe size {self.size!r}: image_size "auto" is chosen from the images '
                f"when a run starts; outside a run give a number, e.g. image_size=224"
            )

    def _columns(self) -> list[dict[str, int]]:
        """Per op, its value names and their columns."""
        columns, start = [], 0
        for op in self.ops:
            names = op.params + op.early_params
            columns.append({name: start + i for i, name in enumerate(names)})
            start += len(names)
        return columns

    @property
    def num_params(self) -> int:
        return sum(len(columns) for columns in self._columns())

    def column(self, op_type: type[BatchedOp], name: str) -> int:
        """The column of value ``name`` of this recipe's one op of type ``op_type``."""
        found = [
            columns[name]
            for op, columns in zip(self.ops, self._columns(), strict=True)
            if isinstance(op, op_type) and name in columns
        ]
        if len(found) != 1:
            raise ValueError(f"{len(found)} ops of type {op_type.__name__} draw {name!r}")
        return found[0]

    def draw(self, height: int, width: int, rng: random.Random) -> tuple[Box, list[float]]:
        """One image's crop and row of values. The generator is read in this order: the crop,
        every op's ``draw_early``, then every op's ``draw``, the ops in the order of ``ops``."""
        box = sample_crop(height, width, self.crop, rng)
        early = [_drawn(op, op.early_params, op.draw_early(rng)) for op in self.ops]
        late = [_drawn(op, op.params, op.draw(rng)) for op in self.ops]
        return box, [value for e, d in zip(early, late, strict=True) for value in (*d, *e)]

    def finish(
        self, pixels: torch.Tensor, params: torch.Tensor, masked: bool | None = None
    ) -> torch.Tensor:
        """The view's ops on its cropped float pixels in [0, 1] (N×3×H×W, changed in place),
        given their drawn rows (N×num_params), then normalisation.

        ``masked`` (default: on any device but the CPU) runs every op on the whole batch and
        keeps its result where drawn, so nothing waits for the host; otherwise each op
        touches only the images that drew it (see ``apply_drawn``).
        """
        if params.shape[-1] != self.num_params:
            raise ValueError(
                f"{params.shape[-1]} drawn values per image, expected {self.num_params}"
            )
        if masked is None:
            masked = pixels.device.type != "cpu"
        x = pixels
        for op, columns in zip(self.ops, self._columns(), strict=True):
            x = op.apply(x, {name: params[:, c] for name, c in columns.items()}, masked)
        mean = torch.tensor(self.normalize.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.normalize.std, device=x.device).view(1, 3, 1, 1)
        return x.sub_(mean).div_(std)


def _drawn(op: BatchedOp, names: tuple[str, ...], values: Sequence[float]) -> Sequence[float]:
    if len(values) != len(names):
        raise ValueError(f"{type(op).__name__} drew {len(values)} values for {names}")
    return values


@dataclass
class PreparedBatch:
    """A batch after the per-image stage: uint8 pixels and, per view, the drawn parameters.

    When every image has one size, ``images`` holds them unchanged and ``boxes`` the crop of
    each view (cropping happens, batched, in ``finish``); otherwise ``crops`` holds each
    view's crops, already resized.
    """

    params: list[torch.Tensor]  # per view: N×that view's num_params
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
    seeds: list[int], sizes: list[tuple[int, int]], recipes: Sequence[ViewRecipe]
) -> tuple[list[list[Box]], list[list[list[float]]]]:
    """Per view, every image's crop (top, left, h, w) and row of values, drawn from a
    generator seeded for that image. Every path draws here, so the same image and seed give
    the same views on any of them."""
    boxes: list[list[Box]] = [[] for _ in recipes]
    params: list[list[list[float]]] = [[] for _ in recipes]
    for seed, (height, width) in zip(seeds, sizes, strict=True):
        rng = random.Random(seed)
        for v, recipe in enumerate(recipes):
            box, row = recipe.draw(height, width, rng)
            boxes[v].append(box)
            params[v].append(row)
    return boxes, params


def box_tensor(crops: list[Box]) -> torch.Tensor:
    """(top, left, h, w) crops as roi_align's N×4 (x1, y1, x2, y2) boxes."""
    return torch.tensor(
        [(left, top, left + w, top + h) for top, left, h, w in crops], dtype=torch.float32
    )


def prepare_views(
    items: list[tuple[int, torch.Tensor]], recipes: Sequence[ViewRecipe]
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


def crop_batch(images: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Every image's crop box resized to ``size`` in one call: bilinear, averaging over
    several samples per output pixel where the crop is larger (like antialiasing)."""
    indices = torch.arange(len(boxes), dtype=boxes.dtype, device=boxes.device).unsqueeze(1)
    return roi_align(images, torch.cat([indices, boxes], dim=1), list(size), aligned=True)


@final
class BatchedViews:
    """A transform's batched form: ``prepare`` in the loader workers, ``finish`` wherever the
    batch is (worker on CPU runs, GPU otherwise).

    Not for subclassing: a transform extends it through its recipes' ops, since the nvJPEG
    path draws with ``draw_views`` and finishes with ``finish_crops``, bypassing ``prepare``.
    """

    def __init__(self, recipes: Sequence[ViewRecipe]) -> None:
        self.recipes = list(recipes)

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
        """Per view, the cropped float pixels in [0, 1] and the drawn rows: finished views."""
        return [
            recipe.finish(pixels, view_params)
            for pixels, view_params, recipe in zip(crops, params, self.recipes, strict=True)
        ]


class PerImageViews:
    """Callable: uint8 image (C×H×W, any channel count) -> its views, float 3×H×W each.

    The batched path on a batch of one. Its seed comes from torch's global generator, so
    ``torch.manual_seed`` makes it repeatable.
    """

    def __init__(self, batched: BatchedViews) -> None:
        self.batched = batched

    def __call__(self, image: torch.Tensor) -> list[torch.Tensor]:
        seed = int(torch.randint(0, 2**62, (1,)))
        views = self.batched.finish(self.batched.prepare([(seed, image)]))
        return [view[0] for view in views]
