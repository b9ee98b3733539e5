"""SimCLR for ssl-core. The entry point ``simclr = "ssl_simclr"`` registers it.

The torch parts (``NTXentLoss``, ``SimCLRProjectionHead``) load on first access, so listing
methods never imports torch.
"""

from __future__ import annotations

from typing import Any

from ssl_simclr.args import SimCLRArgs, SimCLRTransformArgs
from ssl_simclr.plugin import SimCLR, SimCLRTransform, ssl_register_methods, ssl_register_transforms

__all__ = [
    "NTXentLoss",
    "SimCLR",
    "SimCLRArgs",
    "SimCLRProjectionHead",
    "SimCLRTransform",
    "SimCLRTransformArgs",
    "ssl_register_methods",
    "ssl_register_transforms",
]

_LAZY = {"NTXentLoss": "ssl_simclr.loss", "SimCLRProjectionHead": "ssl_simclr.head"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ssl_simclr' has no attribute {name!r}")
