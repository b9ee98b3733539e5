"""The method's module on its device: built with the run context, wrapped for several
processes and torch.compile, and its lifecycle hooks resolved once."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ssl_core.config import ResolvedConfig
from ssl_core.errors import ConfigError
from ssl_core.method import build_module
from ssl_core.run_info import RunInfo
from ssl_core.train.global_batchnorm import convert_sync_batchnorm


def pick_device(accelerator: str, local_rank: int) -> torch.device:
    if accelerator == "cuda" or (accelerator == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("accelerator 'cuda' was asked for, but no CUDA device is visible.")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def _nothing(*_: Any) -> None:
    return None


@dataclass(frozen=True)
class Lifecycle:
    """The module's hooks (``MethodModule``'s names), or no-ops where a module has none:
    a 0.1 module needs none of them."""

    on_train_start: Callable[[RunInfo], None]
    on_before_forward: Callable[[int], None]
    on_before_optimizer_step: Callable[[int, torch.optim.Optimizer], None]
    on_after_optimizer_step: Callable[[int], None]
    on_epoch_end: Callable[[int], None]

    @classmethod
    def of(cls, module: nn.Module) -> Lifecycle:
        return cls(**{name: getattr(module, name, _nothing) for name in cls.__dataclass_fields__})


def exported_backbone(module: nn.Module) -> nn.Module:
    """What the run exports: the module's choice, else its ``backbone``."""
    choose = getattr(module, "exported_backbone", None)
    if choose is not None:
        return choose()
    backbone = getattr(module, "backbone", None)
    if not isinstance(backbone, nn.Module):
        raise TypeError(
            f"{type(module).__name__} has no `backbone` module and no exported_backbone(): "
            f"the core cannot tell which network to export."
        )
    return backbone


@dataclass
class BuiltModel:
    model: nn.Module  # what the step calls: the module, maybe inside DDP and torch.compile
    module: nn.Module  # the method's own module: hooks, checkpoint, export
    lifecycle: Lifecycle
    memory_format: torch.memory_format


def _buffer_sync(every_step: bool) -> dict[str, Any]:
    """DDP's option for copying rank 0's buffers before each forward; it was renamed."""
    if every_step:
        return {}  # the default
    parameters = inspect.signature(nn.parallel.DistributedDataParallel).parameters
    name = "forward_sync_buffers" if "forward_sync_buffers" in parameters else "broadcast_buffers"
    return {name: False}


def build_model(resolved: ResolvedConfig, run: RunInfo, device: torch.device) -> BuiltModel:
    """The method's trainable module on ``device``, channels-last for conv nets, wrapped in
    DDP (with global BatchNorm where the method asks for it) on several processes."""
    args = resolved.args
    torch.manual_seed(args.seed)
    backbone = resolved.backbone.build()
    method = resolved.method_cls(resolved.method_args)
    module = build_module(method, backbone, run)
    exported_backbone(module)  # a module that cannot say what to export fails here, not at the end
    channels_last = any(isinstance(m, nn.Conv2d) for m in backbone.modules())
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    module = module.to(device).to(memory_format=memory_format)
    model: nn.Module = module
    if run.world_size > 1:
        if method.sync_batchnorm:
            module = model = convert_sync_batchnorm(module, device)
        model = nn.parallel.DistributedDataParallel(
            module,
            device_ids=[device.index] if device.type == "cuda" else None,
            **_buffer_sync(method.broadcast_buffers),
        )
    if args.compile:
        model = torch.compile(model)  # type: ignore[assignment]  # compiles in the first step
    return BuiltModel(model, module, Lifecycle.of(module), memory_format)
