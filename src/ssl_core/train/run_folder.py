"""Who owns an output folder: a marker says "ssl-core wrote this", a lock says "a run is
using it now". ``--overwrite`` deletes only what a run wrote, and never a folder that holds
the data, the working directory or the home directory."""

from __future__ import annotations

import fcntl
import fnmatch
import json
import os
import shutil
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ssl_core.data.scan import shown_path as shown
from ssl_core.errors import ConfigError

MARKER = ".ssl-core-run"
LOCK = ".ssl-core.lock"
CHECKPOINT = Path("checkpoints") / "last.ckpt"

# What a run writes, as glob patterns relative to its folder: nothing else is deleted.
RUN_FILES = (
    MARKER,
    LOCK,
    "train.log",
    "config.json",
    "metrics.jsonl",
    "summary.json",
    "checkpoints",
    "checkpoints/*.ckpt",
    "checkpoints/.*.tmp-*",
    "exported_models",
    "exported_models/*.pt",
    "exported_models/.*.tmp-*",
    "tensorboard",
    "tensorboard/events.out.tfevents.*",
    "plots",
    "plots/*.png",
    "plots/.*.png.tmp-*",
)
# A folder written before runs had a marker is still a run when it holds only these.
LEGACY_SIGN = "config.json"
FOREIGN_SHOWN = 5


def is_run_file(relative: str) -> bool:
    return any(fnmatch.fnmatchcase(relative, pattern) for pattern in RUN_FILES)


def foreign_paths(out: Path) -> list[str]:
    """Paths under ``out`` that no run writes (the user's own files), relative to it."""
    found = []
    for directory, subdirs, names in os.walk(out):
        subdirs.sort()
        for name in sorted(subdirs) + sorted(names):
            relative = os.path.relpath(os.path.join(directory, name), out)
            if not is_run_file(relative):
                found.append(relative)
        # The contents of a foreign folder are not listed one by one.
        subdirs[:] = [
            d for d in subdirs if is_run_file(os.path.relpath(os.path.join(directory, d), out))
        ]
    return found


def is_run_folder(out: Path) -> bool:
    return (out / MARKER).is_file() or ((out / LEGACY_SIGN).is_file() and not foreign_paths(out))


def check(out: Path, overwrite: bool, resume: bool, protected: Sequence[str | Path] = ()) -> None:
    """Refuse a bad ``out`` before any work; reads, never writes. ``protected``: the data
    paths, which ``--overwrite`` must never delete."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out '{shown(out)}' is a file, not a directory.")
    if resume:
        if not (out / CHECKPOINT).is_file():
            raise ConfigError(
                f"Cannot resume: '{shown(out / CHECKPOINT)}' does not exist. Start a new run "
                f"without --resume."
            )
        return
    if not (out.is_dir() and any(entry.name != LOCK for entry in out.iterdir())):
        return  # empty, or holding only the lock of this run (or of a crashed one)
    if not overwrite:
        raise ConfigError(
            f"Output directory '{shown(out)}' is not empty. Use --overwrite to start again "
            f"(deletes what the earlier run wrote) or --resume to continue its last run, or "
            f"choose another --out."
        )
    _check_nothing_precious_inside(out, protected)
    if not is_run_folder(out):
        raise ConfigError(
            f"Refusing to overwrite '{shown(out)}': it is not an ssl-core run folder (no "
            f"{MARKER} marker), so deleting it could lose your files. Choose another --out."
        )
    foreign = foreign_paths(out)
    if foreign:
        listed = ", ".join(shown(p) for p in foreign[:FOREIGN_SHOWN])
        more = f" and {len(foreign) - FOREIGN_SHOWN} more" if len(foreign) > FOREIGN_SHOWN else ""
        raise ConfigError(
            f"Refusing to overwrite '{shown(out)}': besides an earlier run it holds files "
            f"that no run wrote ({listed}{more}). Move them elsewhere or choose another --out."
        )


def _check_nothing_precious_inside(out: Path, protected: Sequence[str | Path]) -> None:
    real_out = Path(os.path.realpath(out))
    precious = {"the working directory": Path.cwd(), "your home directory": Path.home()}
    precious.update({f"the data '{shown(p)}'": Path(p) for p in protected})
    for what, path in precious.items():
        real = Path(os.path.realpath(path))
        if real == real_out or real_out in real.parents:
            raise ConfigError(
                f"Refusing to overwrite '{shown(out)}': it contains {what}. Choose another "
                f"--out, e.g. a new folder under it."
            )


@dataclass
class Holder:
    """Who holds a run folder's lock, as written in the lock file."""

    pid: int
    host: str
    started: str

    def describe(self) -> str:
        return f"process {self.pid} on {self.host}, started {self.started}"


class RunFolderLock:
    """An exclusive ``flock`` on ``out/.ssl-core.lock`` for the life of the run. The kernel
    drops it when the holder dies, however it dies, so a lock left by a crash is stale and
    taken over; the file itself names the holder for the message a second run gets."""

    def __init__(self, out: Path) -> None:
        self.path = out / LOCK
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the run
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = read_holder(self.path)
            handle.close()
            who = holder.describe() if holder else "another process"
            raise ConfigError(
                f"Output directory '{shown(self.path.parent)}' is in use by another run "
                f"({who}). Wait for it to finish, stop it, or choose another --out."
            ) from None
        handle.seek(0)
        handle.truncate()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        handle.write(
            json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": stamp})
        )
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is None:
            return
        # Unlink before unlocking: a run waiting for the lock then creates a fresh file.
        self.path.unlink(missing_ok=True)
        self._handle.close()
        self._handle = None


def read_holder(path: Path) -> Holder | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Holder(int(data["pid"]), str(data["host"]), str(data["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


class RunFolder:
    """The output folder of the run this process launches: checked, locked and, when
    training starts, cleared (``--overwrite``) and marked."""

    def __init__(
        self, out: Path, overwrite: bool, resume: bool, protected: Sequence[str | Path] = ()
    ) -> None:
        self.out, self.overwrite, self.resume = out, overwrite, resume
        self.protected = protected
        self.lock = RunFolderLock(out)
        self._created = False

    def __enter__(self) -> RunFolder:
        check(self.out, self.overwrite, self.resume, self.protected)
        try:
            self._created = not self.out.exists()
            self.out.mkdir(parents=True, exist_ok=True)
            self.lock.acquire()
        except OSError as exc:
            raise ConfigError(
                f"Cannot use the output directory '{shown(self.out)}': {exc.strerror}."
            ) from None
        try:
            # Checked again under the lock: a run that started meanwhile may have written.
            check(self.out, self.overwrite, self.resume, self.protected)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.lock.release()
        if self._created and self.out.is_dir() and not any(self.out.iterdir()):
            self.out.rmdir()  # a run refused before it wrote anything leaves nothing behind


def prepare(out: Path, overwrite: bool) -> None:
    """Make a checked (and locked) ``out`` ready to train in: an overwrite deletes what the
    earlier run wrote, an interrupted write's temporary files go, and the marker is set."""
    try:
        if overwrite:
            for entry in sorted(out.iterdir()):
                if entry.name == LOCK:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        remove_temporary_files(out)
        (out / MARKER).write_text(
            "This folder was written by ssl-core; `ssl pretrain --overwrite` may replace it.\n",
            encoding="utf-8",
        )
    except OSError as exc:
        raise ConfigError(
            f"Cannot prepare the output directory '{shown(out)}': {exc.strerror}."
        ) from None


def remove_temporary_files(out: Path) -> list[Path]:
    """Half-written checkpoints and exports from a run that was killed while writing."""
    removed = []
    for folder in ("checkpoints", "exported_models"):
        for tmp in sorted((out / folder).glob(".*.tmp-*")):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed
