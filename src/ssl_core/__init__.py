"""ssl-core: self-supervised pretraining of vision backbones, with methods as plugins.

Importing ``ssl_core`` is cheap: torch loads only when a model is built or training starts
(``MethodModule`` and ``StepOutput`` load it on first access).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ssl_core.args import StrictArgs
from ssl_core.backbones.provider import BackboneProvider, InputSize
from ssl_core.errors import (
    ConfigError,
    DiskFull,
    FirstStepFailed,
    Interrupted,
    NonFiniteLoss,
    PluginError,
    RankFailed,
    SSLCoreError,
    UnknownNameError,
)
from ssl_core.eval.results import EmbedResult, EvaluationResult, ExportCheckFailed, ExportResult
from ssl_core.hookspecs import hookimpl
from ssl_core.method import Method
from ssl_core.optimizer_args import OptimizerArgs
from ssl_core.plugins import host
from ssl_core.pretraining import pretrain
from ssl_core.results import PretrainResult
from ssl_core.run_info import RunInfo
from ssl_core.transforms.base import Transform
from ssl_core.use import embed, evaluate, export

if TYPE_CHECKING:
    from ssl_core.backbones.backbone import Backbone
    from ssl_core.method_module import MethodModule, StepOutput

__version__ = "0.1.0"

__all__ = [
    "Backbone",
    "BackboneProvider",
    "ConfigError",
    "DiskFull",
    "EmbedResult",
    "EvaluationResult",
    "ExportCheckFailed",
    "ExportResult",
    "FirstStepFailed",
    "InputSize",
    "Interrupted",
    "Method",
    "MethodModule",
    "NonFiniteLoss",
    "OptimizerArgs",
    "PluginError",
    "PretrainResult",
    "RankFailed",
    "RunInfo",
    "SSLCoreError",
    "StepOutput",
    "StrictArgs",
    "Transform",
    "UnknownNameError",
    "build_backbone",
    "embed",
    "evaluate",
    "export",
    "get_method",
    "get_transform",
    "hookimpl",
    "list_methods",
    "list_models",
    "list_transforms",
    "pretrain",
]


def list_methods(filter: str = "") -> list[str]:
    """Names of the installed methods, optionally filtered (fnmatch pattern or substring)."""
    return host.registry.list_methods(filter)


def get_method(name: str) -> type[Method]:
    """The method class registered as ``name``; UnknownNameError lists what exists."""
    return host.registry.get_method(name)


def list_transforms(filter: str = "") -> list[str]:
    return host.registry.list_transforms(filter)


def get_transform(name: str) -> type[Transform]:
    return host.registry.get_transform(name)


def list_models(filter: str = "") -> list[str]:
    """Backbone names such as ``torchvision/resnet18``; imports each provider's library."""
    return host.registry.list_models(filter)


def build_backbone(name: str, **model_args: Any) -> Backbone:
    """A randomly initialised backbone for a registry name."""
    return host.registry.build_backbone(name, **model_args)


_LAZY = {
    "Backbone": "ssl_core.backbones.backbone",
    "MethodModule": "ssl_core.method_module",
    "StepOutput": "ssl_core.method_module",
}


def __getattr__(name: str) -> Any:
    """The torch-bound public names, imported on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ssl_core' has no attribute {name!r}")
