"""BYOL for ssl-core. The entry point ``byol = "ssl_byol"`` registers it.

The torch parts (``BYOLModel``, the heads, ``byol_loss``) load on first access, so listing
methods never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from ssl_byol.args import BYOLArgs, BYOLTransformArgs, BYOLViewArgs
from ssl_byol.plugin import BYOL, BYOLTransform, ssl_register_methods, ssl_register_transforms

__all__ = [
    "BYOL",
    "BYOLArgs",
    "BYOLModel",
    "BYOLPredictionHead",
    "BYOLProjectionHead",
    "BYOLTransform",
    "BYOLTransformArgs",
    "BYOLViewArgs",
    "byol_loss",
    "ssl_register_methods",
    "ssl_register_transforms",
]

_LAZY = {
    "BYOLModel": "ssl_byol.model",
    "BYOLPredictionHead": "ssl_byol.heads",
    "BYOLProjectionHead": "ssl_byol.heads",
    "byol_loss": "ssl_byol.loss",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ssl_byol' has no attribute {name!r}")
