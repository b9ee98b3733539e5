"""The run's state in its checkpoint: the method's module (parameters, buffers, extra
state), optimiser, lr schedule, position and RNG states; and the resume rules."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from ssl_core.errors import ConfigError
from ssl_core.train import checkpoint as ckpt
from ssl_core.train import run_dir
from ssl_core.train.model import BuiltModel

# Settings that may change between a run and its resume without changing the result.
RESUMABLE_CHANGES = {"resume", "overwrite", "num_workers", "compile"}


@dataclass
class Position:
    epoch: int = 0  # epochs finished
    step: int = 0  # optimiser steps done


def read_for_resume(out: Path, config: dict[str, Any]) -> dict[str, Any]:
    """The last checkpoint, after checking that the settings allow resuming from it."""
    saved: dict[str, Any] = ckpt.load(out / run_dir.CHECKPOINT)
    check_resumable(saved["config"], config)
    return saved


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


def restore(
    saved: dict[str, Any], built: BuiltModel, optimizer: Optimizer, scheduler: LRScheduler
) -> Position:
    built.module.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    ckpt.restore_rng_states(saved["rng"])
    return Position(saved["epoch"], saved["step"])


def save(
    out: Path,
    position: Position,
    built: BuiltModel,
    optimizer: Optimizer,
    scheduler: LRScheduler,
    config: dict[str, Any],
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
        },
        out / run_dir.CHECKPOINT,
    )
