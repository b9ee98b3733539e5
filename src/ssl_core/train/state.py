"""The run's state in its checkpoint: the method's module (parameters, buffers, extra
state), optimiser, lr schedule, position and RNG states; and the resume rules."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from ssl_core.errors import ConfigError
from ssl_core.results import PretrainResult
from ssl_core.train import checkpoint as ckpt
from ssl_core.train import run_dir
from ssl_core.train.model import BuiltModel

# Settings that may change between a run and its resume without changing the result.
RESUMABLE_CHANGES = {
    "out",  # a run folder may be moved, e.g. to another disk, and resumed there
    "resume",
    "overwrite",
    "num_workers",
    "compile",
    "checkpoint_every_steps",
    "checkpoint_every_minutes",
    # the kNN monitor reads the model and never changes it
    "val_data",
    "val_every_epochs",
    # installed versions: a change is warned of when resolving (see provenance.py)
    "provenance",
}
# Paths compared by what they point to: "imgs", "imgs/" and "/abs/imgs" are one folder.
PATH_SETTINGS = ("data",)


@dataclass
class Position:
    epoch: int = 0  # epochs finished
    step: int = 0  # optimiser steps done
    best_knn_top1: float | None = None  # the kNN monitor's best so far (checkpoints/best.ckpt)


class CheckpointSchedule:
    """When a checkpoint is due within an epoch: every ``steps`` steps, or once ``minutes``
    have passed since the last one (either may be None)."""

    def __init__(self, steps: int | None, minutes: float | None) -> None:
        self.steps, self.minutes = steps, minutes
        self.last = time.monotonic()

    def due(self, step: int) -> bool:
        if self.steps is not None and step % self.steps == 0:
            return True
        return self.minutes is not None and time.monotonic() - self.last >= self.minutes * 60

    def written(self) -> None:
        self.last = time.monotonic()


def read_for_resume(out: Path, config: dict[str, Any]) -> dict[str, Any]:
    """The last checkpoint, after checking that the settings allow resuming from it."""
    saved: dict[str, Any] = ckpt.load(out / run_dir.CHECKPOINT)
    check_resumable(saved["config"], config)
    return saved


def check_resumable(saved: dict[str, Any], current: dict[str, Any]) -> None:
    changed = [
        key
        for key in sorted(set(saved) | set(current))
        if key not in RESUMABLE_CHANGES and _comparable(key, saved) != _comparable(key, current)
    ]
    if changed:
        details = "; ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed)
        raise ConfigError(
            f"Cannot resume with different settings ({details}). Resume with the settings "
            f"of the original run (see its config.json), or start a new run."
        )


def _comparable(key: str, config: dict[str, Any]) -> Any:
    value = config.get(key)
    if key in PATH_SETTINGS and value is not None:
        paths = [value] if isinstance(value, str) else value
        return [os.path.realpath(os.path.expanduser(p)) for p in paths]
    return value


def finished_run(out: Path, epochs: int) -> PretrainResult | None:
    """The result of a run in ``out`` that already trained its ``epochs`` and wrote its
    summary and export, read without loading the weights; None otherwise."""
    summary = out / "summary.json"
    if not (summary.is_file() and (out / run_dir.EXPORT).is_file()):
        return None
    try:
        saved = ckpt.load(out / run_dir.CHECKPOINT, mmap=True)
        result = PretrainResult.from_json(json.loads(summary.read_text(encoding="utf-8")))
    except (OSError, ValueError, RuntimeError, TypeError, KeyError):
        return None
    if saved["config"].get("epochs") != epochs or saved["epoch"] < epochs:
        return None
    if result.steps != saved["step"]:
        return None
    return result


def restore(
    saved: dict[str, Any], built: BuiltModel, optimizer: Optimizer, scheduler: LRScheduler
) -> Position:
    built.module.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    ckpt.restore_rng_states(saved["rng"])
    return Position(saved["epoch"], saved["step"], saved.get("best_knn_top1"))


def save(
    out: Path,
    position: Position,
    built: BuiltModel,
    optimizer: Optimizer,
    scheduler: LRScheduler,
    config: dict[str, Any],
    path: Path = run_dir.CHECKPOINT,
) -> None:
    ckpt.save_atomic(
        {
            "model": built.module.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": position.epoch,
            "step": position.step,
            "rng": ckpt.rng_states(),
            "config": config,
            "best_knn_top1": position.best_knn_top1,
        },
        out / path,
    )
