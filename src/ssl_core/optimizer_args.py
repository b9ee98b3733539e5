"""Optimiser settings: a method's defaults, overridden by the user's ``optim_args``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ssl_core.args import StrictArgs


class OptimizerArgs(StrictArgs):
    name: Literal["sgd", "lars", "adamw"] = Field(
        "sgd", description="Optimiser: SGD with momentum, LARS, or AdamW."
    )
    lr: float = Field(
        0.3,
        gt=0,
        description="Learning rate for a global batch of `lr_reference_batch`; scaled linearly.",
    )
    lr_reference_batch: int = Field(
        256, gt=0, description="Global batch size at which `lr` applies unscaled."
    )
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD/LARS momentum.")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas.")
    weight_decay: float = Field(
        1e-4, ge=0, description="Weight decay; never applied to biases and normalisation layers."
    )
    warmup_epochs: float = Field(
        10.0,
        ge=0,
        description="Linear warmup length in epochs, capped at a tenth of the run; then cosine.",
    )
    lars_trust_coefficient: float = Field(0.001, gt=0, description="LARS trust coefficient.")
    gradient_clip_norm: float | None = Field(
        None, description="Clip the gradient norm to this value; off (None) by default."
    )
