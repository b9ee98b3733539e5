"""The output directory: refusing to clobber, train.log, metrics.jsonl and TensorBoard."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from ssl_core.errors import ConfigError

CHECKPOINT = Path("checkpoints") / "last.ckpt"
EXPORT = Path("exported_models") / "exported_last.pt"


def check(out: Path, overwrite: bool, resume: bool) -> None:
    """Refuse a bad ``out`` before any work; never delete anything that is not an ssl-core run."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out '{out}' is a file, not a directory.")
    if resume:
        if not (out / CHECKPOINT).is_file():
            raise ConfigError(
                f"Cannot resume: '{out / CHECKPOINT}' does not exist. Start a new run "
                f"without --resume."
            )
        return
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ConfigError(
                f"Output directory '{out}' is not empty. Use --overwrite to start again "
                f"(deletes its contents) or --resume to continue its last run, or choose "
                f"another --out."
            )
        if not (out / "config.json").is_file():
            raise ConfigError(
                f"Refusing to overwrite '{out}': it is not empty and holds no ssl-core run "
                f"(no config.json), so deleting it could lose your files. Choose another --out."
            )


def prepare(out: Path, overwrite: bool, resume: bool) -> None:
    """Make ``out`` ready (after ``check`` passed and the data was found)."""
    check(out, overwrite, resume)
    try:
        if overwrite and out.is_dir():
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"Cannot prepare the output directory '{out}': {exc.strerror}.") from None


class RunLog:
    """Prints to the console and appends the same line to ``train.log``; rank 0 only."""

    def __init__(self, out: Path, enabled: bool = True, console: Console | None = None):
        self.enabled = enabled
        self.console = console or Console(highlight=False)
        self.path = out / "train.log"
        self._metrics = None
        self._tensorboard: Any = None
        if enabled:
            self._file = self.path.open("a", encoding="utf-8")
            self._metrics = (out / "metrics.jsonl").open("a", encoding="utf-8")
            self._tensorboard = _tensorboard_writer(out / "tensorboard")

    def info(self, message: str, style: str = "") -> None:
        if not self.enabled:
            return
        text = f"[{style}]{escape(message)}[/{style}]" if style else escape(message)
        self.console.print(text, soft_wrap=True)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self._file.write(f"{stamp} {message}\n")
        self._file.flush()

    def warning(self, message: str) -> None:
        self.info(f"Warning: {message}", style="yellow")

    def metrics(self, rows: list[dict[str, Any]]) -> None:
        if not self.enabled or self._metrics is None:
            return
        for row in rows:
            self._metrics.write(json.dumps(row) + "\n")
            if self._tensorboard is not None:
                # The core's values and the method's own metrics (StepOutput) alike.
                for key, value in row.items():
                    if key not in ("epoch", "step"):
                        self._tensorboard.add_scalar(f"train/{key}", value, row["step"])
        self._metrics.flush()

    def close(self) -> None:
        if self.enabled:
            self._file.close()
            if self._metrics is not None:
                self._metrics.close()
            if self._tensorboard is not None:
                self._tensorboard.close()


def _tensorboard_writer(path: Path) -> Any:
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(path))


def write_config(out: Path, config: dict[str, Any]) -> None:
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def append_traceback(out: Path, rank: int, exc: BaseException) -> Path | None:
    """Add a failure's full traceback to ``train.log`` (any process may: appends of one
    write each do not interleave), so an unattended run keeps what the console lost."""
    import traceback

    path = out / "train.log"
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    try:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(f"{stamp} Process {rank} failed:\n{text}")
    except OSError:
        return None
    return path
