"""A small VICReg for ssl-core, written to be copied. The entry point
``plugin_template = "ssl_plugin_template"`` (pyproject.toml) makes ssl-core import this
module and call its hooks.

Importing it must stay cheap: listing methods and ``--help`` read only the pydantic
schemas, so torch is imported inside ``build()`` (``model.py``, ``views.py``), never here.
"""

from __future__ import annotations

from ssl_plugin_template.args import TemplateVICRegArgs, TemplateVICRegTransformArgs
from ssl_plugin_template.plugin import (
    TemplateVICReg,
    TemplateVICRegTransform,
    ssl_register_methods,
    ssl_register_transforms,
)

__all__ = [
    "TemplateVICReg",
    "TemplateVICRegArgs",
    "TemplateVICRegTransform",
    "TemplateVICRegTransformArgs",
    "ssl_register_methods",
    "ssl_register_transforms",
]
