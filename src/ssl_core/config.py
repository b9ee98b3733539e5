"""The pretraining configuration: every argument validated before any data is read or model
built, and resolved against the method's defaults."""

from __future__ import annotations

import json
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from ssl_core.args import StrictArgs, validate_args
from ssl_core.backbones.provider import BackboneSource
from ssl_core.errors import ConfigError
from ssl_core.method import Method
from ssl_core.optimizer_args import OptimizerArgs
from ssl_core.plugins import host
from ssl_core.transforms.base import Transform

Accelerator = Literal["auto", "cpu", "cuda"]
Precision = Literal["auto", "32-true", "bf16-mixed"]


class PretrainArgs(StrictArgs):
    """Top-level arguments of ``pretrain`` (the nested ``*_args`` are checked by their schema)."""

    out: str = Field(..., description="Output directory for checkpoints, logs and the export.")
    data: str | list[str] = Field(..., description="Image directory, or a list of files/dirs.")
    model: str = Field(..., description="Backbone name, e.g. torchvision/resnet18.")
    method: str = Field("simclr", description="Pretraining method.")
    method_args: dict[str, Any] | None = Field(None, description="The method's arguments.")
    transform_args: dict[str, Any] | None = Field(None, description="The transform's arguments.")
    optim_args: dict[str, Any] | None = Field(None, description="Optimiser arguments.")
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


TOP_LEVEL_KEYS = tuple(PretrainArgs.model_fields)


@dataclass(frozen=True)
class ResolvedConfig:
    """Everything the engine needs, validated; ``to_json`` is what ``config.json`` holds.
    It is all the training processes get: they never look up a plugin themselves."""

    args: PretrainArgs
    method_cls: type[Method]
    method_args: StrictArgs
    transform_cls: type[Transform]
    transform_args: StrictArgs
    optim_args: OptimizerArgs
    epochs: int
    backbone: BackboneSource
    command_line: tuple[str, ...] | None = None  # the ``ssl`` arguments, for a resume hint

    def to_json(self) -> dict[str, Any]:
        data = self.args.model_dump(mode="json")
        data.update(
            method_args=self.method_args.model_dump(mode="json"),
            transform_args=self.transform_args.model_dump(mode="json"),
            optim_args=self.optim_args.model_dump(mode="json"),
            epochs=self.epochs,
        )
        return data


def method_transform_defaults(method_cls: type[Method]) -> tuple[Any, Any]:
    """The transform class a method uses and its defaults with the method's overrides."""
    transform_cls = host.registry.get_transform(method_cls.transform)
    defaults = validate_args(
        transform_cls.args_model, method_cls.transform_defaults, "transform_args"
    )
    return transform_cls, defaults


def resolve(values: Mapping[str, Any], *, from_strings: bool = False) -> ResolvedConfig:
    """Validate ``values`` (pretrain's keyword arguments, or strings from the command line).

    Checks names and types only; it reads no data and builds no model.
    """
    values = dict(values)
    model = values.get("model")
    custom_model = None
    if model is not None and not isinstance(model, str):
        _check_custom_model(model)
        custom_model = model
        values["model"] = f"custom/{type(model).__name__}"
    for key in ("method_args", "transform_args", "optim_args", "model_args"):
        if isinstance(values.get(key), BaseModel):
            values[key] = values[key].model_dump()
    if isinstance(values.get("data"), (str, Path)):
        values["data"] = str(values["data"])
    elif isinstance(values.get("data"), (list, tuple)):
        values["data"] = [str(p) for p in values["data"]]
    if isinstance(values.get("val_data"), Path):
        values["val_data"] = str(values["val_data"])
    if isinstance(values.get("out"), Path):
        values["out"] = str(values["out"])
    nested: dict[str, Any] = {}
    for key in ("method_args", "transform_args", "optim_args"):
        if key in values:
            nested[key] = values.pop(key)
    model_args = _model_args(values.pop("model_args", None), from_strings)
    args = validate_args(PretrainArgs, values, "", from_strings=from_strings)
    update: dict[str, Any] = {**nested, "model_args": model_args}
    args = args.model_copy(update=update)
    if args.overwrite and args.resume:
        raise ConfigError("overwrite and resume exclude each other: choose one.")

    method_cls = host.registry.get_method(args.method)
    method_args = validate_args(
        method_cls.args_model, args.method_args, "method_args", from_strings=from_strings
    )
    transform_cls, transform_defaults = method_transform_defaults(method_cls)
    transform_args = validate_args(
        transform_cls.args_model,
        args.transform_args,
        "transform_args",
        from_strings=from_strings,
        base=transform_defaults,
    )
    optim_args = validate_args(
        OptimizerArgs,
        args.optim_args,
        "optim_args",
        from_strings=from_strings,
        base=method_cls.default_optimizer,
    )
    if custom_model is None:
        provider, short_name = host.registry.resolve_model(args.model)
        if args.model_args:
            # A key the constructor does not take fails now, not deep inside the library.
            provider.check_args(short_name, args.model_args)
        backbone = BackboneSource(args.model, provider, dict(args.model_args or {}))
    else:
        backbone = BackboneSource(args.model, module=custom_model)
    return ResolvedConfig(
        args=args,
        method_cls=method_cls,
        method_args=method_args,
        transform_cls=transform_cls,
        transform_args=transform_args,
        optim_args=optim_args,
        epochs=args.epochs or method_cls.default_epochs,
        backbone=backbone,
    )


def _check_custom_model(model: Any) -> None:
    """Anything but a name must be a module; torch is imported only for this check."""
    from torch import nn

    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"model must be a backbone name such as 'torchvision/resnet18' or a "
            f"torch.nn.Module, got {type(model).__name__} {reprlib.repr(model)}. "
            f"`ssl models list` shows the names."
        )


def _model_args(value: Any, from_strings: bool) -> dict[str, Any] | None:
    """Backbone constructor arguments pass through; command-line strings are read as JSON
    literals where they are one (``image_size=64`` gives an int)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"model_args must be a mapping of argument names to values, got {value!r}."
        )
    if not from_strings:
        return dict(value)
    parsed = {}
    for key, text in value.items():
        try:
            parsed[key] = json.loads(text)
        except (TypeError, ValueError):
            parsed[key] = text
    return parsed
