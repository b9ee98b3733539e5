"""The training dataset: images decoded once into a shared uint8 cache when they fit the
memory budget (else decoded on the fly in the loader workers), each turned into views."""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ssl_core.data.decode import (
    MAX_PIXELS,
    Unreadable,
    decode_file,
    open_image_file,
    read_header,
)
from ssl_core.data.scan import shown_path


@dataclass
class Skipped:
    """Files left out of training, with the reason for each."""

    files: list[tuple[Path, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files)

    def summary(self, limit: int = 5) -> str:
        shown = "; ".join(f"{shown_path(path)} ({why})" for path, why in self.files[:limit])
        more = f"; and {len(self.files) - limit} more" if len(self.files) > limit else ""
        return f"Skipped {len(self.files)} unreadable image file(s): {shown}{more}."


class ImageCache:
    """Decoded images in one flat uint8 tensor: forked loader workers share its pages
    instead of decoding again, and no per-image Python object is copied on write."""

    def __init__(self, storage: torch.Tensor, offsets: torch.Tensor, shapes: torch.Tensor):
        self.storage, self.offsets, self.shapes = storage, offsets, shapes

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, index: int) -> torch.Tensor:
        start = int(self.offsets[index])
        c, h, w = (int(v) for v in self.shapes[index])
        return self.storage[start : start + c * h * w].view(c, h, w)

    @property
    def nbytes(self) -> int:
        return self.storage.numel()

    @classmethod
    def from_images(cls, images: Sequence[torch.Tensor]) -> ImageCache:
        sizes = torch.tensor([img.numel() for img in images], dtype=torch.int64)
        offsets = torch.cumsum(sizes, 0) - sizes
        shapes = torch.tensor([tuple(img.shape) for img in images], dtype=torch.int32)
        storage = torch.cat([img.reshape(-1) for img in images]) if images else torch.empty(0)
        return cls(storage.to(torch.uint8), offsets, shapes)


def _threads() -> int:
    return max(1, min(16, len(os.sched_getaffinity(0)) * 2))


def decode_all(
    files: Sequence[Path], progress: Callable[[int], None] | None = None
) -> tuple[ImageCache, list[Path], Skipped]:
    """Decode every file (threads: the decoders release the GIL); skip unreadable ones."""
    images: list[torch.Tensor] = []
    kept: list[Path] = []
    skipped = Skipped()

    def load(path: Path) -> torch.Tensor | str:
        try:
            return decode_file(path)
        except Unreadable as exc:
            return str(exc)

    with ThreadPoolExecutor(_threads()) as pool:
        for path, result in zip(files, pool.map(load, files, chunksize=64), strict=True):
            if isinstance(result, str):
                skipped.files.append((path, result))
            else:
                images.append(result)
                kept.append(path)
            if progress is not None:
                progress(1)
    return ImageCache.from_images(images), kept, skipped


def check_headers(files: Sequence[Path]) -> tuple[list[Path], Skipped]:
    """Cheap pass for data too large to cache: drop empty, non-image and oversized files."""
    skipped = Skipped()

    def check(path: Path) -> str | None:
        try:
            with open_image_file(path) as handle:
                read_header(handle, MAX_PIXELS)  # the header only: the data stays on disk
        except (OSError, Unreadable) as exc:
            return str(exc)
        return None

    kept = []
    with ThreadPoolExecutor(_threads()) as pool:
        for path, problem in zip(files, pool.map(check, files, chunksize=256), strict=True):
            if problem is None:
                kept.append(path)
            else:
                skipped.files.append((path, problem))
    return kept, skipped


def sample_sizes(files: Sequence[Path], sample: int = 64) -> list[tuple[int, int]]:
    """(height, width) of up to ``sample`` files, from their headers only. The sample is
    seeded, so every process (and a resume) reads the same files; unreadable ones are
    left out."""
    rng = random.Random(0)
    picked = rng.sample(list(files), min(sample, len(files)))
    sizes = []
    for path in picked:
        try:
            with open_image_file(path) as handle:
                _, w, h = read_header(handle)
            sizes.append((h, w))
        except (OSError, Unreadable):
            continue
    return sizes


def estimated_bytes(files: Sequence[Path], sample: int = 64) -> int:
    """Decoded size of all files, estimated from the headers of a sample."""
    pixels = [h * w for h, w in sample_sizes(files, sample)]
    mean = sum(pixels) / len(pixels) if pixels else 0
    return int(mean * 3 * len(files))


def memory_budget() -> int:
    """A quarter of the machine's memory for the image cache."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4
    except (ValueError, OSError, AttributeError):
        return 2 * 1024**3


class ViewDataset(Dataset):
    """Item ``(seed, index)`` (from EpochSampler) of image ``index``: its views made by the
    per-image ``transform`` after seeding torch with ``seed``; or, with no transform, the
    pair ``(seed, uint8 image)`` for a batched transform to handle in ``BatchCollate``.
    ``load`` reads a file (default: decode it); ``load_encoded`` leaves JPEGs encoded."""

    def __init__(
        self,
        transform: Callable[[torch.Tensor], list[torch.Tensor]] | None,
        cache: ImageCache | None = None,
        files: Sequence[Path] | None = None,
        load: Callable[[Path], Any] = decode_file,
    ) -> None:
        if (cache is None) == (files is None):
            raise ValueError("give exactly one of cache and files")
        self.transform = transform
        self.cache = cache
        self.files = list(files) if files is not None else None
        self.load = load

    def __len__(self) -> int:
        return len(self.cache) if self.cache is not None else len(self.files or [])

    def image(self, index: int) -> Any:
        if self.cache is not None:
            return self.cache[index]
        assert self.files is not None
        for attempt in range(len(self.files)):
            path = self.files[(index + attempt) % len(self.files)]
            try:
                return self.load(path)
            except Unreadable as exc:
                # A file that passed the header check but fails to decode (truncated): use
                # the next one so the batch keeps its size, and say so.
                warnings.warn(f"skipping unreadable image {shown_path(path)}: {exc}", stacklevel=2)
        raise RuntimeError("no readable image left")

    def __getitem__(self, item: tuple[int, int]) -> Any:
        seed, index = item
        if self.transform is None:
            return seed, self.image(index)
        torch.manual_seed(seed)
        return self.transform(self.image(index))


class BatchCollate:
    """Collate for a batched transform, run in the loader workers: crops every image and,
    unless the batched stage runs on the device, finishes the views too."""

    def __init__(self, batched: Any, finish: bool) -> None:
        self.batched = batched
        self.finish = finish

    def __call__(self, items: list[tuple[int, torch.Tensor]]) -> Any:
        views = self.batched.prepare(items)
        return self.batched.finish(views) if self.finish else views
