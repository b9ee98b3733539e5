"""The training loop: data, model, optimiser, resume, progress, checkpoints and export."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn
from torch.utils.data import DataLoader

from ssl_core.backbones.backbone import from_module
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
from ssl_core.errors import ConfigError, SSLCoreError
from ssl_core.plugins import host
from ssl_core.train import checkpoint as ckpt
from ssl_core.train import distributed, run_dir
from ssl_core.train.distributed import Placement
from ssl_core.train.global_batchnorm import convert_sync_batchnorm
from ssl_core.train.optim import build_optimizer, build_scheduler, warmup_steps
from ssl_core.train.precision import autocast, resolve_precision
from ssl_core.train.sampler import EpochSampler

# Settings that may change between a run and its resume without changing the result.
RESUMABLE_CHANGES = {"resume", "overwrite", "num_workers", "compile"}


class NonFiniteLoss(SSLCoreError):
    """The loss became NaN or infinite."""


class FirstStepFailed(SSLCoreError):
    """The model could not take the first batch: usually image size and model disagree."""


@dataclass
class PretrainResult:
    out: Path
    exported_model: Path
    checkpoint: Path
    epochs: int
    steps: int
    images: int
    skipped_images: int
    final_loss: float
    seconds: float
    images_per_second: float
    device: str
    precision: str
    rank: int = 0  # under torchrun/srun every process returns one; rank 0 reports it

    def to_json(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PretrainResult:
        paths = {"out", "exported_model", "checkpoint"}
        values: dict[str, Any] = {k: Path(v) if k in paths else v for k, v in data.items()}
        return cls(**values)


def pick_device(accelerator: str, local_rank: int) -> torch.device:
    if accelerator == "cuda" or (accelerator == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("accelerator 'cuda' was asked for, but no CUDA device is visible.")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


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


def load_images(
    files: list[Path], cache: bool | str, show_progress: bool
) -> tuple[ImageCache | None, list[Path], Skipped]:
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


def check_resumable(saved: dict[str, Any], current: dict[str, Any]) -> None:
    changed = [
        key
        for key in sorted(set(saved) | set(current))
        if key not in RESUMABLE_CHANGES and saved.get(key) != current.get(key)
    ]
    if changed:
        details = "; ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed)
        raise ConfigError(
            f"Cannot resume with different settings ({details}). Resume with the settings "
            f"of the original run (see its config.json), or start a new run."
        )


def unwrap(model: nn.Module) -> nn.Module:
    """The method's module inside torch.compile's and DDP's wrappers."""
    model = getattr(model, "_orig_mod", model)  # torch.compile's OptimizedModule
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


@dataclass
class PreparedData:
    """Images found and decoded once (by the launching process), shared with every rank."""

    cache: ImageCache | None
    kept: list[Path]
    skipped: Skipped


def prepare_data(resolved: ResolvedConfig, world_size: int, main: bool = True) -> PreparedData:
    """Every check that can be the user's mistake, before the output directory is touched.
    ``main``: this process owns the output directory and shows progress."""
    args = resolved.args
    if main:
        run_dir.check(Path(args.out), args.overwrite, args.resume)
    if args.batch_size % world_size:
        raise ConfigError(
            f"batch_size {args.batch_size} does not divide among {world_size} processes: "
            f"choose a multiple of {world_size}."
        )
    files = scan_images(args.data)
    cache, kept, skipped = load_images(files, args.cache_images, main)
    if not kept:
        raise ConfigError(
            f"None of the {len(files)} image files could be read. {skipped.summary()}"
        )
    if len(kept) // args.batch_size == 0:
        raise ConfigError(
            f"batch_size {args.batch_size} is larger than the {len(kept)} readable images: "
            f"lower --batch-size."
        )
    return PreparedData(cache, kept, skipped)


def train(
    resolved: ResolvedConfig, place: Placement | None = None, data: PreparedData | None = None
) -> PretrainResult:
    """Train on this process's share. ``data`` comes from the launcher, else it is prepared
    here; rank 0 alone writes to the output directory."""
    place = place or Placement()
    args = resolved.args
    out = Path(args.out)
    started = time.perf_counter()
    device = pick_device(args.accelerator, place.local_rank)
    precision = resolve_precision(args.precision, device)
    distributed.init_process_group(place, device)
    if device.type == "cpu" and place.world_size > 1:
        # Processes on one machine share its cores; more threads than cores only contend.
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // place.world_size))
    if data is None:
        data = prepare_data(resolved, place.world_size, place.main)
    if place.main:
        run_dir.prepare(out, args.overwrite, args.resume)
    distributed.barrier(place)
    log = run_dir.RunLog(out, enabled=place.main)
    try:
        if data.skipped:
            log.warning(data.skipped.summary())
        return _train(resolved, place, out, device, precision, log, started, data)
    finally:
        log.close()


@dataclass
class Loading:
    """The data side of a run, as the loop uses it."""

    loader: DataLoader
    sampler: EpochSampler
    to_views: Callable[[Any], list[torch.Tensor]]  # a loader batch -> the views on the device
    steps_per_epoch: int
    workers: int
    images: int


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


def finish_prepared(batched: Any, batch: Any, device: torch.device) -> list[torch.Tensor]:
    return batched.finish(batch.to(device, non_blocking=True))


def views_to(views: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
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
            partial(finish_prepared, batched, device=device)
            if stages.augment
            else partial(views_to, device=device)
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
    )
    return Loading(loader, sampler, to_views, len(sampler) // per_rank, workers, len(dataset))


def build_model(
    resolved: ResolvedConfig, place: Placement, device: torch.device
) -> tuple[nn.Module, torch.memory_format]:
    """The method's trainable module on ``device``, channels-last for conv nets, wrapped in
    DDP (with global BatchNorm where the method asks for it) on several processes."""
    args = resolved.args
    torch.manual_seed(args.seed)
    if resolved.custom_model is not None:
        backbone = from_module(resolved.custom_model, args.model)
    else:
        backbone = host.registry.build_backbone(args.model, **(args.model_args or {}))
    method = resolved.method_cls(resolved.method_args)
    model: nn.Module = method.build(backbone)
    channels_last = any(isinstance(m, nn.Conv2d) for m in backbone.modules())
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device).to(memory_format=memory_format)
    if place.world_size > 1:
        if method.sync_batchnorm:
            model = convert_sync_batchnorm(model, device)
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if args.compile:
        model = torch.compile(model)  # type: ignore[assignment]  # compiles in _first_step
    return model, memory_format


class StepWindow:
    """Losses kept on the device between flushes (one host sync per flush), then checked
    for NaN/inf and turned into metric rows with the window's throughput."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.steps: list[tuple[int, torch.Tensor, float]] = []
        self.start = time.perf_counter()

    def add(self, step: int, loss: torch.Tensor, lr: float) -> None:
        self.steps.append((step, loss.detach(), lr))

    def flush(self, epoch: int) -> tuple[list[dict[str, Any]], float]:
        """Metric rows and the seconds the window took; raises NonFiniteLoss."""
        seconds = time.perf_counter() - self.start
        losses = torch.stack([loss for _, loss, _ in self.steps]).float().cpu().tolist()
        rate = len(self.steps) * self.batch_size / max(seconds, 1e-9)
        for (step, _, _), value in zip(self.steps, losses, strict=True):
            if not math.isfinite(value):
                raise NonFiniteLoss(
                    f"The loss became {value} at step {step} (epoch {epoch}); training "
                    f"stopped. The last good checkpoint is the one written at the end of the "
                    f"previous epoch, if there was one. Try a lower learning rate "
                    f"(optim_args.lr), gradient clipping (optim_args.gradient_clip_norm) or "
                    f"precision=32-true."
                )
        rows = [
            {"epoch": epoch, "step": step, "loss": value, "lr": lr, "images_per_second": rate}
            for (step, _, lr), value in zip(self.steps, losses, strict=True)
        ]
        self.steps = []
        self.start = time.perf_counter()
        return rows, seconds


def _first_step(
    model: nn.Module,
    views: list[torch.Tensor],
    precision: str,
    device: torch.device,
    args: Any,
) -> torch.Tensor:
    """The first forward and backward pass, where a model that cannot take these images
    fails (and torch.compile compiles): say so in one message instead of a traceback from
    deep inside the model."""
    try:
        with autocast(precision, device):
            loss = model(views)
        loss.backward()
        return loss
    except (RuntimeError, ValueError, AssertionError, TypeError) as exc:
        shape = "×".join(str(d) for d in views[0].shape[1:])
        compiled = (
            " It ran under torch.compile (compile=True): rerun without it to see whether the "
            "compiler or the model is at fault."
            if args.compile
            else ""
        )
        raise FirstStepFailed(
            f"{args.model} failed on the first batch of views ({shape}): "
            f"{str(exc).strip().rstrip('.!')}. Check that the model accepts this image size "
            f"(transform_args.image_size; ViTs, for example, need model_args.image_size to "
            f"match) and the method's arguments, then rerun with --overwrite.{compiled}"
        ) from exc


def _progress(log: run_dir.RunLog) -> Progress:
    return Progress(
        TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
        BarColumn(),
        TextColumn("step {task.completed}/{task.total}"),
        TextColumn(
            "loss {task.fields[loss]:.4f}  lr {task.fields[lr]:.4g}  {task.fields[ips]:.0f} img/s"
        ),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=log.console,
        disable=not (log.enabled and log.console.is_terminal),
    )


def _train(
    resolved: ResolvedConfig,
    place: Placement,
    out: Path,
    device: torch.device,
    precision: str,
    log: run_dir.RunLog,
    started: float,
    data: PreparedData,
) -> PretrainResult:
    args = resolved.args
    config_json = resolved.to_json()
    state = None
    if args.resume:
        state = ckpt.load(out / run_dir.CHECKPOINT)
        check_resumable(state["config"], config_json)
    elif place.main:
        run_dir.write_config(out, config_json)

    loading = build_loading(resolved, place, device, data)
    model, memory_format = build_model(resolved, place, device)
    epochs = resolved.epochs
    steps_per_epoch = loading.steps_per_epoch
    total_steps = epochs * steps_per_epoch
    optimizer = build_optimizer(model, resolved.optim_args, args.batch_size)
    warmup = warmup_steps(resolved.optim_args, steps_per_epoch, total_steps)
    scheduler = build_scheduler(optimizer, total_steps, warmup)
    start_epoch, step = 0, 0
    if state is not None:
        unwrap(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, step = state["epoch"], state["step"]
        ckpt.restore_rng_states(state["rng"])
        if start_epoch >= epochs:
            log.info(f"This run had already finished its {epochs} epochs; exporting again.")
        else:
            log.info(f"Resuming from epoch {start_epoch}, step {step}.")

    per_rank = args.batch_size // place.world_size
    log.info(
        f"ssl-core: {args.method} on {args.model} | {loading.images} images"
        f"{f' ({len(data.skipped)} skipped)' if data.skipped else ''} | batch {args.batch_size}"
        f" ({per_rank} × {place.world_size} process{'es' if place.world_size > 1 else ''}) | "
        f"{steps_per_epoch} steps/epoch × {epochs} epochs | {device.type}, {precision}, "
        f"{loading.workers} loader workers | out: {out}"
    )

    clip = resolved.optim_args.gradient_clip_norm
    flush_every = 1 if device.type == "cpu" else 20  # a host sync per flush on GPUs
    last_loss = float("nan")
    trained_images, trained_seconds = 0, 0.0
    first_step = True
    model.train()
    with _progress(log) as progress:
        task = progress.add_task(
            "train",
            total=total_steps,
            completed=step,
            epoch=start_epoch + 1,
            epochs=epochs,
            loss=float("nan"),
            lr=scheduler.get_last_lr()[0],
            ips=0.0,
        )
        for epoch in range(start_epoch, epochs):
            loading.sampler.set_epoch(epoch)
            window = StepWindow(args.batch_size)
            epoch_images, epoch_seconds = 0, 0.0
            for batch in loading.loader:
                views = [v.contiguous(memory_format=memory_format) for v in loading.to_views(batch)]
                lr = float(scheduler.get_last_lr()[0])
                optimizer.zero_grad(set_to_none=True)
                if first_step:
                    loss = _first_step(model, views, precision, device, args)
                    first_step = False
                else:
                    with autocast(precision, device):
                        loss = model(views)
                    loss.backward()
                if clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), clip)
                optimizer.step()
                scheduler.step()
                step += 1
                window.add(step, loss, lr)
                if len(window.steps) >= flush_every or step % steps_per_epoch == 0:
                    rows, seconds = window.flush(epoch + 1)
                    log.metrics(rows)
                    last_loss = rows[-1]["loss"]
                    epoch_images += len(rows) * args.batch_size
                    epoch_seconds += seconds
                    progress.update(
                        task,
                        completed=step,
                        epoch=epoch + 1,
                        loss=last_loss,
                        lr=rows[-1]["lr"],
                        ips=rows[-1]["images_per_second"],
                    )
            trained_images += epoch_images
            trained_seconds += epoch_seconds
            log.info(
                f"epoch {epoch + 1}/{epochs}  step {step}/{total_steps}  loss {last_loss:.4f}  "
                f"lr {scheduler.get_last_lr()[0]:.4g}  "
                f"{epoch_images / max(epoch_seconds, 1e-9):.0f} img/s"
            )
            if place.main:
                ckpt.save_atomic(
                    {
                        "model": unwrap(model).state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "epoch": epoch + 1,
                        "step": step,
                        "rng": ckpt.rng_states(),
                        "config": config_json,
                    },
                    out / run_dir.CHECKPOINT,
                )

    export_path = out / run_dir.EXPORT
    if place.main:
        export_path.parent.mkdir(parents=True, exist_ok=True)
        trained_backbone: Any = unwrap(model).backbone
        ckpt.save_atomic(trained_backbone.original_model().state_dict(), export_path)
    distributed.barrier(place)
    result = PretrainResult(
        out=out,
        exported_model=export_path,
        checkpoint=out / run_dir.CHECKPOINT,
        epochs=epochs,
        steps=step,
        images=loading.images,
        skipped_images=len(data.skipped),
        final_loss=last_loss,
        seconds=time.perf_counter() - started,
        images_per_second=trained_images / trained_seconds if trained_seconds else 0.0,
        device=str(device),
        precision=precision,
        rank=place.rank,
    )
    if place.main:
        (out / "summary.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
        log.info(
            f"Done: {step} steps in {result.seconds:.0f} s ({result.images_per_second:.0f} "
            f"img/s while training). Pretrained backbone: {export_path}"
        )
    return result
