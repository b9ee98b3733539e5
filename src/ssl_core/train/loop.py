"""The training loop of one process, as a list of named steps: data, model, optimiser and
schedule, state, the epochs of steps with their metrics and checkpoints, then the export."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch

from ssl_core.config import ResolvedConfig
from ssl_core.errors import DiskFull, FirstStepFailed, Interrupted, SSLCoreError
from ssl_core.plots import plot_finished_run
from ssl_core.results import PretrainResult
from ssl_core.run_info import RunInfo
from ssl_core.train import (
    process_group,
    resume_hint,
    run_dir,
    run_folder,
    shared_cache,
    state,
    stop_signals,
)
from ssl_core.train.data import Loading, PreparedData, build_loading, prepare_data
from ssl_core.train.export import export_backbone
from ssl_core.train.metrics import StepWindow
from ssl_core.train.model import BuiltModel, build_model, exported_backbone, pick_device
from ssl_core.train.monitor import BEST_CHECKPOINT, BEST_EXPORT, KnnMonitor, build_monitor
from ssl_core.train.optim import build_optimizer, build_scheduler, warmup_steps
from ssl_core.train.precision import resolve_precision
from ssl_core.train.process_group import Placement
from ssl_core.train.progress import Figures, ProgressReport
from ssl_core.train.step import TrainStep


@dataclass
class Session:
    """This process's place in the run and what it writes to."""

    resolved: ResolvedConfig
    place: Placement
    device: torch.device
    precision: str
    log: run_dir.RunLog
    started: float
    stop: stop_signals.StopRequest

    @property
    def out(self) -> Path:
        return Path(self.resolved.args.out)


def train(
    resolved: ResolvedConfig,
    place: Placement | None = None,
    data: PreparedData | None = None,
    spawned: bool = False,
) -> PretrainResult:
    """Train on this process's share. ``data`` comes from the launcher, else it is prepared
    here; rank 0 alone writes to the output directory (which the launching process has
    claimed). ``spawned``: started for ``devices=N``, which decides how signals are taken."""
    place = place or Placement()
    args = resolved.args
    out = Path(args.out)
    started = time.perf_counter()
    device = pick_device(args.accelerator, place.local_rank)
    precision = resolve_precision(args.precision, device)
    process_group.init_process_group(place, device)
    if device.type == "cpu" and place.world_size > 1:
        # Processes on one machine share its cores; more threads than cores only contend.
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // place.world_size))
    if data is None:
        # Under torchrun/srun: one decode per machine, shared by its processes.
        load = partial(shared_cache.load_shared, place) if place.world_size > 1 else None
        data = prepare_data(resolved, place.world_size, place.main, load)
    resolved = data.resolved or resolved  # with image_size "auto" chosen from the data
    saved = state.read_for_resume(out, resolved.to_json()) if args.resume else None
    if place.main:
        run_folder.prepare(out, args.overwrite)
    process_group.barrier(place)
    log = run_dir.RunLog(out, enabled=place.main, resume_step=saved["step"] if saved else None)
    try:
        for note in data.notes:
            log.info(note)
        if data.skipped:
            log.warning(data.skipped.summary())
        with stop_signals.stop_requests(spawned) as stop:
            session = Session(resolved, place, device, precision, log, started, stop)
            return run_training(session, data, saved)
    except Exception as exc:
        # A user's mistake is shown as it is; a failed first step may be the method's bug.
        if not isinstance(exc, SSLCoreError) or isinstance(exc, FirstStepFailed):
            run_dir.append_traceback(out, place.rank, exc)
        elif place.main and not isinstance(exc, DiskFull):
            log.info(f"Stopped: {exc}", console=False)  # the console shows it as the error
        raise
    finally:
        log.close()


def run_training(
    session: Session, data: PreparedData, saved: dict[str, Any] | None
) -> PretrainResult:
    resolved, place = session.resolved, session.place
    config = resolved.to_json()
    if saved is None and place.main:
        run_dir.write_config(session.out, config)
    loading = build_loading(resolved, place, session.device, data)
    try:
        return train_and_export(session, data, saved, loading, config)
    finally:
        loading.close()


def train_and_export(
    session: Session,
    data: PreparedData,
    saved: dict[str, Any] | None,
    loading: Loading,
    config: dict[str, Any],
) -> PretrainResult:
    resolved, place = session.resolved, session.place
    run = run_info(session, loading, saved)
    built = build_model(resolved, run, session.device)
    optimizer = build_optimizer(built.module, resolved.optim_args, resolved.args.batch_size)
    warmup = warmup_steps(resolved.optim_args, run.steps_per_epoch, run.total_steps)
    scheduler = build_scheduler(optimizer, run.total_steps, warmup)
    position = state.restore(saved, built, optimizer, scheduler) if saved else state.Position()
    announce(session, loading, run, data, position)
    monitor = build_monitor(resolved, session.place, session.device, loading.images)
    if monitor is not None:
        session.log.info(monitor.describe())
    built.lifecycle.on_train_start(run)
    training = Training(
        session,
        loading,
        built,
        TrainStep(built, optimizer, scheduler, resolved, session.precision, session.device),
        run,
        position,
        checkpoint=lambda path=run_dir.CHECKPOINT: state.save(
            session.out, position, built, optimizer, scheduler, config, path
        ),
        monitor=monitor,
    )
    totals = train_epochs(training)
    export_path = session.out / run_dir.EXPORT
    if place.main:
        export_backbone(built.module, export_path)
        plot_finished_run(session.out, session.log)
    process_group.barrier(place)
    return summarize(training, data, totals, export_path)


def run_info(session: Session, loading: Loading, saved: dict[str, Any] | None) -> RunInfo:
    args = session.resolved.args
    return RunInfo(
        epochs=session.resolved.epochs,
        steps_per_epoch=loading.steps_per_epoch,
        global_batch_size=args.batch_size,
        world_size=session.place.world_size,
        rank=session.place.rank,
        device=str(session.device),
        start_step=saved["step"] if saved else 0,
    )


def announce(
    session: Session, loading: Loading, run: RunInfo, data: PreparedData, position: state.Position
) -> None:
    args, log, place = session.resolved.args, session.log, session.place
    if position.epoch >= run.epochs:
        log.info(f"This run had already finished its {run.epochs} epochs; exporting again.")
    elif position.step:
        within = position.step - position.epoch * run.steps_per_epoch
        log.info(
            f"Resuming at step {position.step} of {run.total_steps} (epoch {position.epoch + 1}"
            f"/{run.epochs}, {within} of its {run.steps_per_epoch} steps done)."
        )
    per_rank = args.batch_size // place.world_size
    processes = f"process{'es' if place.world_size > 1 else ''}"
    skipped = f" ({len(data.skipped)} skipped)" if data.skipped else ""
    log.info(
        f"ssl-core: {args.method} on {args.model} | {loading.images} images{skipped} | "
        f"batch {args.batch_size} ({per_rank} × {place.world_size} {processes}) | "
        f"{run.steps_per_epoch} steps/epoch × {run.epochs} epochs | {session.device.type}, "
        f"{session.precision}, {loading.workers} loader workers | out: {session.out}"
    )


@dataclass
class Training:
    """What the epochs need, once built."""

    session: Session
    loading: Loading
    built: BuiltModel
    step: TrainStep
    run: RunInfo
    position: state.Position  # advanced by the epochs
    checkpoint: Callable[..., None]  # writes the position's state (rank 0), to a path
    monitor: KnnMonitor | None = None  # with val_data
    knn_top1: float | None = None  # the monitor's last figure, for the progress line


@dataclass
class Totals:
    images: int = 0
    seconds: float = 0.0
    last_loss: float = float("nan")


def train_epochs(training: Training) -> Totals:
    """The epochs from the position to the end: steps, metric rows, checkpoints within an
    epoch when due, and at each epoch's end the method's ``on_epoch_end`` and a checkpoint.
    A stop signal ends the run at a step boundary, after a checkpoint."""
    session, loading, built, step, run, position = (
        training.session,
        training.loading,
        training.built,
        training.step,
        training.run,
        training.position,
    )
    args, log, device = session.resolved.args, session.log, session.device
    flush_every = 1 if device.type == "cpu" else 20  # a host sync per flush on GPUs
    per_rank = args.batch_size // session.place.world_size
    schedule = state.CheckpointSchedule(args.checkpoint_every_steps, args.checkpoint_every_minutes)
    totals = Totals()
    built.model.train()
    lr = float(step.scheduler.get_last_lr()[0])
    start = Figures(position.step, position.epoch + 1, float("nan"), lr, 0.0)
    with ProgressReport(log, run.total_steps, run.epochs, start) as progress:
        for epoch in range(position.epoch, run.epochs):
            # A resume in the middle of an epoch continues with the batches it had not seen.
            done_in_epoch = position.step - epoch * run.steps_per_epoch
            loading.sampler.set_epoch(epoch, skip=done_in_epoch * per_rank)
            window = StepWindow(args.batch_size, device)
            epoch_images, epoch_seconds, stopping = 0, 0.0, False
            for batch in loading.loader:
                views = loading.to_views(batch)
                views = [v.contiguous(memory_format=built.memory_format) for v in views]
                result = step(position.step, views)
                position.step += 1
                window.add(position.step, result.loss, result.metrics, result.lr)
                epoch_end = position.step % run.steps_per_epoch == 0
                if len(window.steps) < flush_every and not epoch_end:
                    continue
                rows, seconds, stopping = window.flush(epoch + 1, session.stop.requested)
                log.metrics(rows)
                totals.last_loss = rows[-1]["loss"]
                epoch_images += len(rows) * args.batch_size
                epoch_seconds += seconds
                progress.update(
                    Figures(
                        position.step,
                        epoch + 1,
                        totals.last_loss,
                        rows[-1]["lr"],
                        rows[-1]["images_per_second"],
                        training.knn_top1,
                    )
                )
                if epoch_end:  # the epoch's checkpoint follows below
                    continue
                if stopping or (session.place.main and schedule.due(position.step)):
                    if session.place.main:
                        training.checkpoint()
                        schedule.written()
                    if stopping:
                        raise interrupted(session, position, run)
            built.lifecycle.on_epoch_end(epoch)
            position.epoch = epoch + 1
            totals.images += epoch_images
            totals.seconds += epoch_seconds
            log.info(
                f"epoch {epoch + 1}/{run.epochs}  step {position.step}/{run.total_steps}  "
                f"loss {totals.last_loss:.4f}  lr {step.scheduler.get_last_lr()[0]:.4g}  "
                f"{epoch_images / max(epoch_seconds, 1e-9):.0f} img/s"
            )
            if training.monitor is not None and training.monitor.due(position.epoch, run.epochs):
                watch(training)  # before the checkpoint, which then holds the best so far
            if session.place.main:
                training.checkpoint()
                schedule.written()
            if stopping and position.step < run.total_steps:
                raise interrupted(session, position, run)
    return totals


def watch(training: Training) -> None:
    """The kNN monitor's evaluation at an epoch's end: logged, and a better backbone kept as
    checkpoints/best.ckpt and exported_models/exported_best.pt."""
    session, position, built = training.session, training.position, training.built
    assert training.monitor is not None
    scores = training.monitor.evaluate(exported_backbone(built.module), built.memory_format)
    session.log.metrics([{"step": position.step, "epoch": position.epoch, **scores}])
    top1 = training.knn_top1 = scores["knn_top1"]
    best = position.best_knn_top1
    if best is None or top1 > best:
        position.best_knn_top1 = top1
        if session.place.main:
            training.checkpoint(BEST_CHECKPOINT)
            export_backbone(built.module, session.out / BEST_EXPORT)
        kept = "the best so far: exported_models/exported_best.pt"
    else:
        kept = f"the best stays {best:.1%}"
    shown = "  ".join(
        f"top-{key.removeprefix('knn_top')} {value:.1%}" for key, value in scores.items()
    )
    session.log.info(f"kNN on val_data after epoch {position.epoch}: {shown} ({kept})")


def interrupted(session: Session, position: state.Position, run: RunInfo) -> Interrupted:
    command = resume_hint.resume_command(session.resolved.command_line)
    return Interrupted(
        f"Interrupted at step {position.step} of {run.total_steps}; the checkpoint is saved. "
        f"Resume with: {command}",
        exit_code=session.stop.exit_code,
    )


def summarize(
    training: Training, data: PreparedData, totals: Totals, export_path: Path
) -> PretrainResult:
    session, position = training.session, training.position
    result = PretrainResult(
        out=session.out,
        exported_model=export_path,
        checkpoint=session.out / run_dir.CHECKPOINT,
        epochs=training.run.epochs,
        steps=position.step,
        images=training.loading.images,
        skipped_images=len(data.skipped),
        final_loss=totals.last_loss,
        seconds=time.perf_counter() - session.started,
        images_per_second=totals.images / totals.seconds if totals.seconds else 0.0,
        device=str(session.device),
        precision=session.precision,
        rank=session.place.rank,
        provenance=session.resolved.provenance,
    )
    if session.place.main:
        run_dir.write_json(session.out / "summary.json", result.to_json())
        session.log.info(
            f"Done: {position.step} steps in {result.seconds:.0f} s "
            f"({result.images_per_second:.0f} img/s while training). "
            f"Pretrained backbone: {export_path}"
        )
    return result
