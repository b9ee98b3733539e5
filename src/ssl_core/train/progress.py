"""How far the run is: a live bar on a terminal, else a line at least every 30 seconds (for
logs of unattended jobs), and once the first steps are timed, how long the run will take."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ssl_core.train.run_dir import RunLog

LINE_SECONDS = float(os.environ.get("SSL_CORE_PROGRESS_SECONDS", "30"))
# The first step pays for warm-up (allocation, compilation): the estimate starts after it
# and uses this many steps, or what the first ESTIMATE_SECONDS allow.
ESTIMATE_STEPS = 10
ESTIMATE_SECONDS = 20.0


@dataclass
class Figures:
    step: int
    epoch: int
    loss: float
    lr: float
    images_per_second: float
    knn_top1: float | None = None  # the kNN monitor's last figure, with val_data


class ProgressReport:
    def __init__(self, log: RunLog, total_steps: int, epochs: int, start: Figures) -> None:
        self.log, self.total_steps, self.epochs = log, total_steps, epochs
        self.live = log.enabled and log.console.is_terminal
        self.bar = _bar(log, disable=not self.live)
        self.task = self.bar.add_task(
            "train",
            total=total_steps,
            completed=start.step,
            epoch=start.epoch,
            epochs=epochs,
            loss=start.loss,
            lr=start.lr,
            ips=0.0,
        )
        self.last_line = time.monotonic()
        self.timed_from: tuple[float, int] | None = None  # (time, step) after the first step
        self.seconds_per_step: float | None = None
        self.estimated = False

    def __enter__(self) -> ProgressReport:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def update(self, now: Figures) -> None:
        self.bar.update(
            self.task,
            completed=now.step,
            epoch=now.epoch,
            loss=now.loss,
            lr=now.lr,
            ips=now.images_per_second,
        )
        clock = time.monotonic()
        self._estimate(clock, now.step)
        if not self.live and clock - self.last_line >= LINE_SECONDS:
            self.last_line = clock
            self.log.info(self.line(now))

    def line(self, now: Figures) -> str:
        knn = "" if now.knn_top1 is None else f"  kNN {now.knn_top1:.1%}"
        eta = ""
        if self.seconds_per_step is not None:
            eta = f"  about {duration(self.seconds_per_step * (self.total_steps - now.step))} left"
        return (
            f"step {now.step}/{self.total_steps} ({100 * now.step / self.total_steps:.0f}%)  "
            f"epoch {now.epoch}/{self.epochs}  loss {now.loss:.4f}  lr {now.lr:.4g}  "
            f"{now.images_per_second:.0f} img/s{knn}{eta}"
        )

    def _estimate(self, clock: float, step: int) -> None:
        """The mean time per step since the first one; said in the log once it is known."""
        if self.timed_from is None:
            self.timed_from = (clock, step)
            return
        start_clock, start_step = self.timed_from
        steps = step - start_step
        if steps <= 0:
            return
        self.seconds_per_step = (clock - start_clock) / steps
        if self.estimated or (steps < ESTIMATE_STEPS and clock - start_clock < ESTIMATE_SECONDS):
            return
        self.estimated = True
        remaining = self.seconds_per_step * (self.total_steps - step)
        ends = time.strftime("%H:%M", time.localtime(time.time() + remaining))
        self.log.info(
            f"Estimated time left: {duration(remaining)} for {self.total_steps - step} more "
            f"steps at {self.seconds_per_step:.3g} s/step (timed over {steps} steps); "
            f"expected to end around {ends}."
        )


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def _bar(log: RunLog, disable: bool) -> Progress:
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
        disable=disable,
    )
