"""The schema of ``pretrain``'s own arguments: the one place they are defined.

``ssl pretrain``'s options are generated from it (``cli_options``), ``ssl_core.pretrain``'s
docstring is written from it, and a test checks that ``pretrain``'s signature names the same
arguments with the same defaults.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from ssl_core.args import StrictArgs

Accelerator = Literal["auto", "cpu", "cuda"]
Precision = Literal["auto", "32-true", "bf16-mixed"]


class PretrainArgs(StrictArgs):
    """Top-level arguments of ``pretrain`` (the nested ``*_args`` are checked by their schema)."""

    out: str = Field(..., description="Output directory for checkpoints, logs and the export.")
    data: str | list[str] = Field(..., description="Image directory, or a list of files/dirs.")
    model: str = Field(..., description="Backbone name, e.g. torchvision/resnet18.")
    method: str = Field("simclr", description="Pretraining method; `ssl methods list` shows them.")
    method_args: dict[str, Any] | None = Field(
        None, description="The method's arguments; `ssl methods show NAME` lists them."
    )
    transform_args: dict[str, Any] | None = Field(
        None, description="The transform's arguments, over the method's transform defaults."
    )
    optim_args: dict[str, Any] | None = Field(
        None, description="Optimiser arguments, over the method's optimiser defaults."
    )
    model_args: dict[str, Any] | None = Field(None, description="Backbone constructor arguments.")
    epochs: int | None = Field(None, gt=0, description="Epochs; None: the method's default.")
    batch_size: int = Field(256, gt=0, description="Global batch size (all devices together).")
    num_workers: int | Literal["auto"] = Field("auto", description="Data loader processes.")
    devices: int | Literal["auto"] = Field("auto", description="Processes/devices on this node.")
    accelerator: Accelerator = Field("auto", description="cpu, cuda, or auto.")
    precision: Precision = Field("auto", description="32-true, bf16-mixed, or auto.")
    seed: int = Field(0, description="Random seed.")
    overwrite: bool = Field(False, description="Delete a non-empty out directory first.")
    resume: bool = Field(False, description="Continue from out/checkpoints/last.ckpt.")
    augment_on_device: bool = Field(
        True,
        description="On CUDA, run the batched colour/blur/normalise stage on the GPU, and "
        "decode JPEGs there (nvJPEG) when the images are not cached.",
    )
    cache_images: bool | Literal["auto"] = Field(
        "auto", description="Decode all images once into memory; auto: when they fit."
    )
    checkpoint_every_steps: int | None = Field(
        None,
        gt=0,
        description="Also write the checkpoint every this many steps within an epoch; "
        "None: by time only.",
    )
    checkpoint_every_minutes: float | None = Field(
        10.0,
        gt=0,
        description="Also write the checkpoint when this many minutes have passed since the "
        "last one; None: only at epoch ends (and every checkpoint_every_steps).",
    )
    val_data: str | None = Field(
        None,
        description="A labelled folder (one subfolder of images per class): the exported "
        "backbone's kNN accuracy on it is logged every val_every_epochs, as `ssl evaluate "
        "--train-data` computes it, and the best is kept (checkpoints/best.ckpt, "
        "exported_models/exported_best.pt).",
    )
    val_every_epochs: int | Literal["auto"] = Field(
        "auto",
        description="Epochs between kNN evaluations on val_data (the last epoch always has "
        "one); auto: as often as keeps them within about 5% of the training compute.",
    )
    compile: bool = Field(
        False,
        description="Compile the model with torch.compile: a slower start, often faster "
        "steps on GPUs (measured slower on CPUs).",
    )

    @field_validator("val_every_epochs")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("give a number of epochs of at least 1, or auto")
        return value

    def nested(self) -> dict[str, Any]:
        return {
            "method_args": self.method_args or {},
            "transform_args": self.transform_args or {},
            "optim_args": self.optim_args or {},
        }


def arguments_docstring(indent: str = "    ") -> str:
    """An ``Args:`` section (Google style) describing every field, for ``pretrain``'s
    docstring: the descriptions and defaults are the schema's."""
    lines = [f"{indent}Args:"]
    for name, field in PretrainArgs.model_fields.items():
        default = "required" if field.is_required() else f"default ``{field.default!r}``"
        lines.append(f"{indent}    {name}: {field.description} ({default})")
    return "\n".join(lines) + "\n"
