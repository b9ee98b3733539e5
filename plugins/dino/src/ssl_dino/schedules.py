"""DINO's values that change over the run, each a function of the step alone (so a resumed
run needs no state for them)."""

from __future__ import annotations

from dataclasses import dataclass

from ssl_core import RunInfo
from ssl_core.schedules import cosine_schedule, linear_warmup
from ssl_dino.args import DINOArgs


@dataclass(frozen=True)
class DINOSchedules:
    args: DINOArgs
    run: RunInfo
    weight_decay_start: float

    def momentum(self, step: int) -> float:
        """Teacher EMA momentum: cosine from momentum_start to momentum_end."""
        return cosine_schedule(
            step, self.run.total_steps, self.args.momentum_start, self.args.momentum_end
        )

    @property
    def teacher_temp_warmup_steps(self) -> int:
        """warmup_teacher_temp_epochs, at most warmup_teacher_temp_max_fraction of the run."""
        epochs = int(self.args.warmup_teacher_temp_epochs * self.run.steps_per_epoch)
        cap = int(self.args.warmup_teacher_temp_max_fraction * self.run.total_steps)
        return min(epochs, cap)

    def teacher_temp(self, step: int) -> float:
        """Linear from warmup_teacher_temp to teacher_temp, then constant."""
        return linear_warmup(
            step,
            self.teacher_temp_warmup_steps,
            self.args.warmup_teacher_temp,
            self.args.teacher_temp,
        )

    def weight_decay(self, step: int) -> float:
        """Cosine from the optimiser's weight decay to weight_decay_end."""
        return cosine_schedule(
            step, self.run.total_steps, self.weight_decay_start, self.args.weight_decay_end
        )

    def last_layer_frozen(self, step: int) -> bool:
        return step < self.args.freeze_last_layer_epochs * self.run.steps_per_epoch
