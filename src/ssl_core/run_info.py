"""RunInfo: what a method may know about the run before its first step (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunInfo:
    """The run as this process sees it, fixed before the first step.

    Steps and epochs count from 0: step ``s`` is the (s+1)-th optimiser step of the whole
    run, over all epochs. ``start_step`` is 0 for a new run and the checkpoint's step on
    ``resume``. A schedule written as a function of the step (``ssl_core.schedules``) is
    then the same after a resume as in an uninterrupted run.
    """

    epochs: int
    steps_per_epoch: int
    global_batch_size: int
    world_size: int = 1
    rank: int = 0
    device: str = "cpu"
    start_step: int = 0

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def epoch_of(self, step: int) -> int:
        """The epoch (from 0) that step ``step`` belongs to."""
        return step // self.steps_per_epoch

    def progress(self, step: int) -> float:
        """How far through the run step ``step`` is: 0.0 at the first step, 1.0 at the end."""
        return min(1.0, step / max(1, self.total_steps))
