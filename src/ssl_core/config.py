"""The pretraining configuration: every argument validated before any data is read or model
built, and resolved against the method's defaults."""

from __future__ import annotations

import json
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ssl_core import provenance
from ssl_core.args import StrictArgs, validate_args
from ssl_core.backbones.provider import BackboneSource
from ssl_core.errors import ConfigError
from ssl_core.method import Method
from ssl_core.optimizer_args import OptimizerArgs
from ssl_core.plugins import host
from ssl_core.pretrain_args import PretrainArgs
from ssl_core.transforms.base import Transform

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
    # ssl-core's version and the distributions that provided the method, transform and
    # backbone provider (see ``provenance``); config.json and summary.json record it.
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = self.args.model_dump(mode="json")
        data.update(
            method_args=self.method_args.model_dump(mode="json"),
            transform_args=self.transform_args.model_dump(mode="json"),
            optim_args=self.optim_args.model_dump(mode="json"),
            epochs=self.epochs,
            provenance=self.provenance,
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
    if args.resume:
        # Before the method is looked up: a plugin gone since names what to install.
        provenance.check_resume(Path(args.out))

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
        provenance=provenance.record(
            args.method, method_cls.transform, args.model if custom_model is None else None
        ),
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
