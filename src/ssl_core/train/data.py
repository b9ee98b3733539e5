"""The data side of a run: images found and decoded once, then a loader of views."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, Progress, TextColumn
from torch.utils.data import DataLoader

from ssl_core.config import ResolvedConfig
from ssl_core.data.dataset import (
    BatchCollate,
    ImageCache,
    Skipped,
    ViewDataset,
    check_headers,
    decode_all,
    estimated_bytes,
    memory_budget,
)
from ssl_core.data.device_decode import EncodedCollate, finish_encoded, load_encoded
from ssl_core.data.scan import scan_images
from ssl_core.errors import ConfigError
from ssl_core.run_info import RunInfo
from ssl_core.train.process_group import Placement
from ssl_core.train.sampler import EpochSampler
from ssl_core.train.settle import settle


@dataclass
class PreparedData:
    """Images found and decoded once (by the launching process), shared with every rank."""

    cache: ImageCache | None
    kept: list[Path]
    skipped: Skipped
    # The configuration with the settings chosen from the data (image_size "auto"), and
    # the log lines that say what was chosen: every rank trains with this one.
    resolved: ResolvedConfig | None = None
    notes: list[str] = field(default_factory=list)


def prepare_data(
    resolved: ResolvedConfig,
    world_size: int,
    main: bool = True,
    load: Callable[[list[Path], bool | str, bool], LoadedImages] | None = None,
) -> PreparedData:
    """Every check that can be the user's mistake, before the output directory is written.
    ``main``: this process shows progress. ``load``: instead of ``load_images`` (under a
    launcher: one decode per machine, shared_cache.load_shared)."""
    args = resolved.args
    if args.batch_size % world_size:
        raise ConfigError(
            f"batch_size {args.batch_size} does not divide among {world_size} processes: "
            f"choose a multiple of {world_size}."
        )
    files = scan_images(args.data)
    cache, kept, skipped = (load or load_images)(files, args.cache_images, main)
    if not kept:
        raise ConfigError(
            f"None of the {len(files)} image files could be read. {skipped.summary()}"
        )
    if len(kept) // args.batch_size == 0:
        raise ConfigError(
            f"batch_size {args.batch_size} is larger than the {len(kept)} readable images: "
            f"lower --batch-size."
        )
    if args.val_data is not None:
        from ssl_core.train.monitor import check_val_data

        check_val_data(args.val_data)
    run = first_run_info(resolved, len(kept), world_size)
    method = resolved.method_cls(resolved.method_args)
    check = getattr(method, "check_run", None)  # a method that is no Method subclass has none
    if check is not None:
        check(run)  # settings it cannot learn from (SimCLR with one image per batch) stop here
    resolved, notes = settle(resolved, kept, run)
    return PreparedData(cache, kept, skipped, resolved, notes)


def first_run_info(resolved: ResolvedConfig, images: int, world_size: int) -> RunInfo:
    """The run as rank 0 will see it from step 0, for the method's checks and choices."""
    from ssl_core.train.model import pick_device

    args = resolved.args
    per_rank = args.batch_size // world_size
    return RunInfo(
        epochs=resolved.epochs,
        steps_per_epoch=(images // world_size) // per_rank,
        global_batch_size=args.batch_size,
        world_size=world_size,
        device=str(pick_device(args.accelerator, 0)),
    )


LoadedImages = tuple[ImageCache | None, list[Path], Skipped]


def load_images(files: list[Path], cache: bool | str, show_progress: bool) -> LoadedImages:
    """Decode into the shared cache when the data fits the memory budget, else check headers
    now and decode in the workers."""
    if cache == "auto":
        cache = estimated_bytes(files) <= memory_budget()
    if not cache:
        kept, skipped = check_headers(files)
        return None, kept, skipped
    with Progress(
        TextColumn("decoding images"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        disable=not show_progress,
        transient=True,
    ) as progress:
        task = progress.add_task("decode", total=len(files))
        image_cache, kept, skipped = decode_all(files, lambda n: progress.advance(task, n))
    return image_cache, kept, skipped


@dataclass
class Loading:
    """The data side of a run, as the loop uses it."""

    loader: DataLoader
    sampler: EpochSampler
    to_views: Callable[[Any], list[torch.Tensor]]  # a loader batch -> the views on the device
    steps_per_epoch: int
    workers: int
    images: int

    def close(self) -> None:
        """Stop the loader processes now. Left to the end of the process, they would be
        stopped with SIGTERM, which they ignore (see _worker_init): it would hang."""
        iterator = getattr(self.loader, "_iterator", None)  # kept by persistent workers
        shutdown = getattr(iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()


@dataclass
class DeviceStages:
    """Which parts of the data path run on the training device instead of the workers."""

    augment: bool  # colour, grayscale, blur and normalise, batched
    decode: bool  # JPEG decoding (nvJPEG), for images that are not cached


def device_stages(
    device: torch.device, augment_on_device: bool, cached: bool, batched: bool
) -> DeviceStages:
    """On a GPU with a batched transform (and ``augment_on_device``), augment there; decode
    JPEGs there too when they are read from disk each epoch rather than from the cache."""
    augment = batched and device.type == "cuda" and augment_on_device
    return DeviceStages(augment=augment, decode=augment and not cached)


def auto_workers(setting: int | str, world_size: int, in_process: bool) -> int:
    """Loader processes for ``num_workers="auto"``.

    ``in_process``: training on the CPU from cached images with a batched transform. The
    augmentation then costs a few percent of a step and runs fastest in the training
    process itself: a worker process would take cores from the step's threads, which
    costs more (measured: 735 vs 682 images/s, ResNet-18 at 32 px on 2 cores).
    """
    if setting != "auto":
        return int(setting)
    if in_process:
        return 0
    cpus = len(os.sched_getaffinity(0))
    return max(0, min(8, cpus // world_size - 1))


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # workers augment small images; threads would only contend
    # Ctrl-C and a scheduler's SIGTERM reach every process of the group; a worker that died
    # of them would break the batch the training process needs to stop cleanly. The
    # training process ends its workers itself (Loading.close).
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


def _finish_prepared(batched: Any, batch: Any, device: torch.device) -> list[torch.Tensor]:
    return batched.finish(batch.to(device, non_blocking=True))


def _views_to(views: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    return [v.to(device, non_blocking=True) for v in views]


def build_loading(
    resolved: ResolvedConfig, place: Placement, device: torch.device, data: PreparedData
) -> Loading:
    args = resolved.args
    transform_maker = resolved.transform_cls(resolved.transform_args)
    batched = transform_maker.build_batched()
    stages = device_stages(
        device, args.augment_on_device, data.cache is not None, batched is not None
    )
    transform = None if batched is not None else transform_maker.build()
    collate: Callable[[Any], Any] | None = None
    to_views: Callable[[Any], list[torch.Tensor]]
    if stages.decode:
        # The workers only read bytes and draw the views; decoding happens on the GPU.
        dataset = ViewDataset(None, files=data.kept, load=load_encoded)
        collate = EncodedCollate(batched)
        to_views = partial(finish_encoded, batched, device=device)
    else:
        if data.cache is not None:
            dataset = ViewDataset(transform, cache=data.cache)
        else:
            dataset = ViewDataset(transform, files=data.kept)
        if batched is not None:
            # On a GPU the batched stage runs there; the workers only crop and ship uint8.
            collate = BatchCollate(batched, finish=not stages.augment)
        to_views = (
            partial(_finish_prepared, batched, device=device)
            if stages.augment
            else partial(_views_to, device=device)
        )
    per_rank = args.batch_size // place.world_size
    sampler = EpochSampler(len(dataset), args.seed, place.rank, place.world_size)
    in_process = device.type == "cpu" and data.cache is not None and batched is not None
    workers = auto_workers(args.num_workers, place.world_size, in_process)
    loader = DataLoader(
        dataset,
        batch_size=per_rank,
        sampler=sampler,
        drop_last=True,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        worker_init_fn=_worker_init if workers > 0 else None,
        prefetch_factor=4 if workers > 0 else None,
        # Its own generator: starting an epoch's iterator then leaves torch's global random
        # state alone, so a resume from the middle of an epoch continues it exactly.
        generator=torch.Generator(),
    )
    return Loading(loader, sampler, to_views, len(sampler) // per_rank, workers, len(dataset))
