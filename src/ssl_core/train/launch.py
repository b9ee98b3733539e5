"""Running the engine on one process, on processes we start (``devices=N``), or on the
processes an external launcher started (torchrun, srun)."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import torch.multiprocessing as mp

from ssl_core.config import ResolvedConfig
from ssl_core.errors import SSLCoreError
from ssl_core.train import distributed
from ssl_core.train.distributed import Placement
from ssl_core.train.loop import PreparedData, PretrainResult, prepare_data, train


class RankFailed(SSLCoreError):
    """One of the training processes failed; the others were stopped."""


def launch(resolved: ResolvedConfig) -> PretrainResult:
    place = distributed.launched_placement()
    if place is not None:
        try:
            return train(resolved, place)
        finally:
            distributed.destroy()
    devices = distributed.resolve_devices(resolved.args.devices, resolved.args.accelerator)
    if devices == 1:
        return train(resolved)
    return spawn(resolved, devices)


def spawn(resolved: ResolvedConfig, devices: int) -> PretrainResult:
    """Start ``devices`` processes on this machine. Images are decoded once, here, into
    shared memory; a process that fails stops the others and its error is raised here."""
    data = prepare_data(resolved, devices)
    if data.cache is not None:
        for tensor in (data.cache.storage, data.cache.offsets, data.cache.shapes):
            tensor.share_memory_()
    port = distributed.free_port()
    # torch logs a warning for each process it stops after a failure; the error says it all.
    logging.getLogger("torch.multiprocessing.spawn").setLevel(logging.ERROR)
    try:
        mp.spawn(_rank_main, args=(resolved, data, port, devices), nprocs=devices, join=True)
    except mp.ProcessRaisedException as exc:
        raise RankFailed(_describe_failure(str(exc), exc.error_index, devices)) from None
    except mp.ProcessExitedException as exc:
        raise RankFailed(
            f"Training process {exc.error_index} of {devices} exited unexpectedly "
            f"({exc}); the other processes were stopped."
        ) from None
    summary = Path(resolved.args.out) / "summary.json"
    return PretrainResult.from_json(json.loads(summary.read_text()))


def _rank_main(
    rank: int, resolved: ResolvedConfig, data: PreparedData, port: int, world: int
) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    try:
        train(resolved, Placement(rank=rank, world_size=world, local_rank=rank), data)
    finally:
        distributed.destroy()


def _describe_failure(traceback_text: str, index: int, devices: int) -> str:
    """The failing process's own error line, and which process it was."""
    lines = [line for line in traceback_text.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else traceback_text
    last = re.sub(r"^[\w.]+: ", "", last)  # drop the exception's qualified class name
    return f"Training process {index} of {devices} failed: {last} The other processes were stopped."
