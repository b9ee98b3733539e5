"""DINO for ssl-core. The entry point ``dino = "ssl_dino"`` registers it.

The torch parts (``DINOModel``, ``DINOHead``, ``dino_loss``) load on first access, so listing
methods never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from ssl_dino.args import DINOArgs, DINOTransformArgs, DINOViewArgs, auto_local_image_size
from ssl_dino.plugin import DINO, DINOTransform, ssl_register_methods, ssl_register_transforms

__all__ = [
    "DINO",
    "DINOArgs",
    "DINOHead",
    "DINOModel",
    "DINOSchedules",
    "DINOTransform",
    "DINOTransformArgs",
    "DINOViewArgs",
    "auto_local_image_size",
    "dino_loss",
    "ssl_register_methods",
    "ssl_register_transforms",
]

_LAZY = {
    "DINOHead": "ssl_dino.head",
    "DINOModel": "ssl_dino.model",
    "DINOSchedules": "ssl_dino.schedules",
    "dino_loss": "ssl_dino.loss",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ssl_dino' has no attribute {name!r}")
