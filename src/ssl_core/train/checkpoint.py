"""Checkpoints: written atomically (temp file, fsync, rename), read with weights_only=True."""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any, BinaryIO

import torch

from ssl_core.errors import ConfigError, DiskFull


def save_atomic(obj: Any, path: Path) -> None:
    """A crash at any moment leaves either the old file or the new one, never half of one;
    a failed write (full disk) raises DiskFull naming the file, and the old one stays."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            recording = _RecordingWriter(handle)
            try:
                torch.save(obj, recording)  # type: ignore[arg-type]
            except RuntimeError:
                # torch reports what the write raised (a full disk's OSError, a second
                # Ctrl-C's KeyboardInterrupt) as a bare "unexpected pos" RuntimeError.
                if recording.error is None:
                    raise
                raise recording.error from None
            if recording.error is not None:  # a failed write torch did not report
                raise recording.error
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise DiskFull(
            f"Could not write '{path}': {exc.strerror or exc}."
            + (" The previous version of the file is kept." if path.exists() else "")
        ) from None
    finally:
        tmp.unlink(missing_ok=True)


class _RecordingWriter:
    """A file for torch.save that keeps what a failed write raised."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.error: BaseException | None = None

    def write(self, data: bytes) -> int:
        try:
            return self.handle.write(data)
        except BaseException as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.handle.flush()


def load(path: Path, mmap: bool = False) -> Any:
    """Tensors and plain containers only (``weights_only``): unpickling arbitrary objects
    would run whatever code a tampered file carries."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        raise ConfigError(
            f"Refusing to load '{path}': it holds Python objects other than tensors and plain "
            f"containers, and loading those could run code ({_reason(exc)}). Load only "
            f"checkpoints you wrote yourself, or start a new run."
        ) from None
    except RuntimeError as exc:
        raise ConfigError(
            f"Cannot read '{path}': the file is damaged ({_reason(exc)}). Start a new run, or "
            f"restore the file from a copy."
        ) from None


def _reason(exc: BaseException) -> str:
    """The line of torch's message that names the cause."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    named = [line for line in lines if "GLOBAL" in line or "failed" in line.lower()]
    line = (named or lines or [type(exc).__name__])[-1]
    return line.split(". ")[0].rstrip(".")


def rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
