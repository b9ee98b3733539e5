"""Running the engine on one process, on processes we start (``devices=N``), or on the
processes an external launcher started (torchrun, srun)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import traceback
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.multiprocessing as mp
from rich.console import Console
from rich.markup import escape

from ssl_core import main_guard
from ssl_core.config import ResolvedConfig
from ssl_core.errors import Interrupted, RankFailed, SSLCoreError
from ssl_core.results import PretrainResult
from ssl_core.train import process_group, run_folder, state, stop_signals
from ssl_core.train.data import PreparedData, prepare_data
from ssl_core.train.loop import train
from ssl_core.train.process_group import Placement

MESSAGE_LINES = 3  # of a failed process's error, shown to the user; train.log has it all
MAX_TEXT = 8000  # characters of a failed process's message and traceback sent back


def launch(resolved: ResolvedConfig) -> PretrainResult:
    args = resolved.args
    place = process_group.launched_placement()
    finished = state.finished_run(Path(args.out), resolved.epochs) if args.resume else None
    if finished is not None:
        return say_finished(finished, place)
    main = place is None or place.main
    data_paths = [args.data] if isinstance(args.data, str) else args.data
    # The process that owns the run holds the folder's lock until the run has ended.
    owner = run_folder.RunFolder(Path(args.out), args.overwrite, args.resume, data_paths)
    with owner if main else nullcontext():
        if place is not None:
            try:
                return train(resolved, place)
            except Exception as exc:
                # Another machine or process went away: one clear message, not gloo's.
                lost = process_group.lost_contact(exc, place)
                if lost is None:
                    raise
                raise lost from None
            finally:
                process_group.destroy()
        devices = process_group.resolve_devices(args.devices, args.accelerator)
        if devices == 1:
            return train(resolved)
        return spawn(resolved, devices)


def say_finished(result: PretrainResult, place: Placement | None) -> PretrainResult:
    """A resumed run that had already finished: nothing is trained or written."""
    if place is None or place.main:
        Console(highlight=False).print(
            f"This run had already finished its {result.epochs} epochs ({result.steps} steps); "
            f"nothing was changed. Pretrained backbone: {escape(str(result.exported_model))}",
            soft_wrap=True,
        )
    return dataclasses.replace(result, rank=place.rank if place else 0)


@dataclass
class Failure:
    """What a failed process sends back: enough for one clear message."""

    rank: int
    kind: str  # the exception's class name
    message: str
    traceback: str
    user_error: bool  # an SSLCoreError: its message is the whole story


def spawn(resolved: ResolvedConfig, devices: int) -> PretrainResult:
    """Start ``devices`` processes on this machine. Images are decoded once, here, into
    shared memory; a process that fails stops the others and its error is raised here."""
    data = prepare_data(resolved, devices)
    if data.cache is not None:
        for tensor in (data.cache.storage, data.cache.offsets, data.cache.shapes):
            tensor.share_memory_()
    port = process_group.free_port()
    failures = mp.get_context("spawn").SimpleQueue()
    # torch logs a warning for each process it stops after a failure; the error says it all.
    logging.getLogger("torch.multiprocessing.spawn").setLevel(logging.ERROR)
    context = mp.start_processes(
        _rank_main,
        args=(resolved, data, port, devices, failures),
        nprocs=devices,
        join=False,
        start_method="spawn",
    )
    # Ctrl-C reaches every process of the terminal's group; the training processes ignore
    # it and stop on the SIGTERM forwarded here, so that they all stop at one step.
    pids = [process.pid for process in context.processes]
    try:
        with stop_signals.forwarding_stops(lambda: pids) as stop:
            while not context.join():
                pass
    except mp.ProcessRaisedException as exc:
        # The first failure sent is the cause; the others' errors are its consequences.
        first = failures.get() if not failures.empty() else None
        if first is not None and first.kind == Interrupted.__name__:
            raise Interrupted(first.message, exit_code=stop.exit_code) from None
        if first is None:
            raise RankFailed(
                f"Training process {exc.error_index} of {devices} failed: "
                f"{_last_line(str(exc))} The other processes were stopped."
            ) from None
        raise RankFailed(_describe(first, devices, Path(resolved.args.out))) from None
    except mp.ProcessExitedException as exc:
        if exc.exit_code == main_guard.EXIT_CODE:
            raise main_guard.missing_guard(devices) from None
        raise RankFailed(
            f"Training process {exc.error_index} of {devices} exited unexpectedly "
            f"({exc}); the other processes were stopped."
        ) from None
    summary = Path(resolved.args.out) / "summary.json"
    return PretrainResult.from_json(json.loads(summary.read_text()))


def _rank_main(
    rank: int,
    resolved: ResolvedConfig,
    data: PreparedData,
    port: int,
    world: int,
    failures: Any,
) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    try:
        train(resolved, Placement(rank=rank, world_size=world, local_rank=rank), data, spawned=True)
    except Exception as exc:
        # Bounded: the parent reads the queue only once every process has ended, and a
        # write larger than the pipe's buffer would block this one forever.
        failures.put(
            Failure(
                rank,
                type(exc).__name__,
                str(exc)[:MAX_TEXT],
                traceback.format_exc()[-MAX_TEXT:],
                isinstance(exc, SSLCoreError),
            )
        )
        raise
    finally:
        process_group.destroy()


def _describe(failure: Failure, devices: int, out: Path) -> str:
    """The failed process's error type and the first lines of its message, and where its
    full traceback is."""
    head = f"Training process {failure.rank} of {devices} failed:"
    if failure.user_error:
        return f"{head} {failure.message} The other processes were stopped."
    lines = [line.strip() for line in failure.message.splitlines() if line.strip()]
    shown = " ".join(line[:300] for line in lines[:MESSAGE_LINES])
    more = " …" if len(lines) > MESSAGE_LINES else ""
    log = out / "train.log"
    if not log.is_file() or f"Process {failure.rank} failed" not in log.read_text(
        encoding="utf-8", errors="replace"
    ):
        # It failed before the run's folder was ready: keep the traceback elsewhere.
        handle, name = tempfile.mkstemp(prefix=f"ssl-core-process{failure.rank}-", suffix=".log")
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(failure.traceback)
        log = Path(name)
    return (
        f"{head} {failure.kind}: {shown}{more} Its full traceback is in {log}. "
        f"The other processes were stopped."
    )


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text
