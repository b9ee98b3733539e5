"""JPEG files decoded on the training device (nvJPEG on CUDA), a batch per call.

On a GPU, SimCLR's two views are usually limited by decoding on the CPU. When the images are
not cached, the loader workers here only read each file's bytes and draw its views' crops
and parameters from the header's size; the training process decodes the whole batch in one
``torchvision.io.decode_jpeg`` call on the device and crops there. Files that are not JPEG
are decoded by the workers as usual. The views equal those of the cached path for the same
seeds: only where the decoding happens changes.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.ops import roi_align

from ssl_core.data.decode import Unreadable, decode_bytes, read_header
from ssl_core.transforms.batched import BatchedViews, box_tensor, draw_views


@dataclass
class EncodedImage:
    """A JPEG file's bytes (1-D uint8) with its size, or a non-JPEG already decoded."""

    data: torch.Tensor
    height: int
    width: int
    path: str

    @property
    def encoded(self) -> bool:
        return self.data.dim() == 1


def load_encoded(path: Path) -> EncodedImage:
    """Read ``path``; decode it here only when it is not a JPEG. Raises Unreadable."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise Unreadable(f"cannot read ({exc.strerror})") from None
    fmt, width, height = read_header(data)
    if fmt == "JPEG":
        buffer = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        return EncodedImage(buffer, height, width, str(path))
    image = decode_bytes(data)
    return EncodedImage(image, int(image.shape[1]), int(image.shape[2]), str(path))


@dataclass
class EncodedBatch:
    """A batch as the workers hand it over: images still encoded, views already drawn."""

    images: list[EncodedImage]
    boxes: list[torch.Tensor]  # per view: N×4 (x1, y1, x2, y2) in each image's pixels
    params: list[torch.Tensor]  # per view: N×that view's num_params


class EncodedCollate:
    """Collate in the loader workers: draw every view of every image (with ``draw_views``,
    as every path does, from the size in the file's header), decode nothing."""

    def __init__(self, batched: BatchedViews) -> None:
        self.batched = batched

    def __call__(self, items: list[tuple[int, EncodedImage]]) -> EncodedBatch:
        images = [image for _, image in items]
        sizes = [(image.height, image.width) for image in images]
        boxes, params = draw_views([seed for seed, _ in items], sizes, self.batched.recipes)
        return EncodedBatch(
            images=images,
            boxes=[box_tensor(view) for view in boxes],
            params=[torch.tensor(p, dtype=torch.float32) for p in params],
        )


def decode_on(images: Sequence[EncodedImage], device: torch.device) -> list[torch.Tensor]:
    """Every image as a 3×H×W uint8 tensor on ``device``; the JPEGs in one decode call.

    A JPEG the device's decoder refuses (CMYK, a truncated file) is decoded on the CPU
    instead; one that no decoder reads is replaced by another image of the batch, with a
    warning, so the batch keeps its size.
    """
    jpegs = [image.data for image in images if image.encoded]
    decoded: list[torch.Tensor | None] = []
    if jpegs:
        try:
            decoded = list(decode_jpeg(jpegs, mode=ImageReadMode.RGB, device=device))
        except RuntimeError:
            decoded = [_decode_one(image, device) for image in images if image.encoded]
    from_jpeg = iter(decoded)
    result = [
        next(from_jpeg) if image.encoded else image.data.to(device, non_blocking=True)
        for image in images
    ]
    readable = [tensor for tensor in result if tensor is not None]
    if not readable:
        raise Unreadable("no image of this batch could be decoded")
    return [tensor if tensor is not None else readable[0] for tensor in result]


def _decode_one(image: EncodedImage, device: torch.device) -> torch.Tensor | None:
    try:
        return decode_bytes(image.data.numpy().tobytes()).to(device)
    except Unreadable as exc:
        warnings.warn(f"skipping unreadable image {image.path}: {exc}", stacklevel=3)
        return None


def crop_each(images: Sequence[torch.Tensor], boxes: torch.Tensor, size: tuple[int, int]):
    """Each image's box resized to ``size`` (as ``crop_batch`` does for equal-sized images),
    float in [0, 1]: the images differ in size, so one roi_align call per image."""
    out = torch.empty(len(images), 3, *size, device=boxes.device)
    zero = torch.zeros(1, 1, device=boxes.device)
    for i, image in enumerate(images):
        box = torch.cat([zero, boxes[i : i + 1]], dim=1)
        out[i] = roi_align(image.unsqueeze(0).float(), box, list(size), aligned=True)[0]
    return out.div_(255)


def finish_encoded(
    batched: BatchedViews, batch: EncodedBatch, device: torch.device
) -> list[torch.Tensor]:
    """Decode, crop and finish a batch's views on ``device`` (each recipe's ops, then
    normalisation, as on the other paths)."""
    images = decode_on(batch.images, device)
    crops = [
        crop_each(images, boxes.to(device, non_blocking=True), recipe.size)
        for boxes, recipe in zip(batch.boxes, batched.recipes, strict=True)
    ]
    params = [p.to(device, non_blocking=True) for p in batch.params]
    return batched.finish_crops(crops, params)
