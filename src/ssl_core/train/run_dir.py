"""What a run writes as it goes: train.log, metrics.jsonl, TensorBoard, and strict JSON
(no NaN) for every JSON file. Who may use the folder is ``run_folder``'s business."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from ssl_core.data.scan import shown_path as shown
from ssl_core.errors import DiskFull
from ssl_core.train.run_folder import CHECKPOINT as CHECKPOINT  # the paths other modules use

EXPORT = Path("exported_models") / "exported_last.pt"


class RunLog:
    """Prints to the console and appends the same line to ``train.log``; rank 0 only.
    ``resume_step``: the checkpoint's step, beyond which earlier rows are dropped."""

    def __init__(
        self,
        out: Path,
        enabled: bool = True,
        console: Console | None = None,
        resume_step: int | None = None,
    ):
        self.enabled = enabled
        self.console = console or Console(highlight=False)
        self.path = out / "train.log"
        self._file: Any = None
        self._metrics: Any = None
        self._tensorboard: Any = None
        if enabled:
            metrics = out / "metrics.jsonl"
            with writing(self.path):
                self._file = self.path.open("a", encoding="utf-8")
            with writing(metrics):
                if resume_step is not None:
                    truncate_metrics(metrics, resume_step)
                self._metrics = metrics.open("a", encoding="utf-8")
            self._tensorboard = _tensorboard_writer(out / "tensorboard", resume_step)

    def info(self, message: str, style: str = "", console: bool = True) -> None:
        if not self.enabled:
            return
        if console:
            text = f"[{style}]{escape(message)}[/{style}]" if style else escape(message)
            self.console.print(text, soft_wrap=True)
        if self._file is None:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with writing(self.path, self._stop_writing):
            self._file.write(f"{stamp} {message}\n")
            self._file.flush()

    def warning(self, message: str) -> None:
        self.info(f"Warning: {message}", style="yellow")

    def metrics(self, rows: list[dict[str, Any]]) -> None:
        if not self.enabled or self._metrics is None:
            return
        with writing(self.path.with_name("metrics.jsonl"), self._stop_writing):
            for row in rows:
                self._metrics.write(json_text(row) + "\n")
            self._metrics.flush()
        if self._tensorboard is not None:
            for row in rows:
                # The core's values and the method's own metrics (StepOutput) alike.
                for key, value in row.items():
                    if key not in ("epoch", "step"):
                        group = "val" if key.startswith("knn_") else "train"
                        self._tensorboard.add_scalar(f"{group}/{key}", value, row["step"])

    def _stop_writing(self) -> None:
        """After a failed write the files are left as they are: the error goes to the
        console, and closing a file on a full disk would only fail again."""
        self._file = self._metrics = self._tensorboard = None

    def close(self) -> None:
        for handle in (self._file, self._metrics, self._tensorboard):
            if handle is not None:
                with suppress(OSError):
                    handle.close()
        self._stop_writing()


@contextmanager
def writing(path: Path, on_error: Callable[[], None] | None = None) -> Iterator[None]:
    """Turns a failed write of ``path`` (full disk, quota, file size limit) into DiskFull,
    which names the file; ``on_error`` runs first."""
    try:
        yield
    except OSError as exc:
        if on_error is not None:
            on_error()
        raise DiskFull(f"Could not write '{shown(path)}': {exc.strerror or exc}.") from None


def truncate_metrics(path: Path, step: int) -> None:
    """Keep the rows up to ``step``: a resumed run writes the later steps again."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        try:
            row_step = json.loads(line)["step"]
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a kill
        if row_step <= step:
            kept.append(line if line.endswith("\n") else line + "\n")
    write_atomic_text(path, "".join(kept))


def _tensorboard_writer(path: Path, resume_step: int | None) -> Any:
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    # purge_step hides the events a resumed run writes again.
    return SummaryWriter(log_dir=str(path), purge_step=resume_step)


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by None (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def json_text(value: Any, indent: int | None = None) -> str:
    return json.dumps(finite(value), indent=indent, allow_nan=False)


def write_atomic_text(path: Path, text: str) -> None:
    """Replace ``path`` whole, or leave it as it was (a temporary file, then a rename)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with writing(path):
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, value: Any) -> None:
    write_atomic_text(path, json_text(value, indent=2) + "\n")


def write_config(out: Path, config: dict[str, Any]) -> None:
    write_json(out / "config.json", config)


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
