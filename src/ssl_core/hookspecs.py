"""The hooks a plugin implements. Each receives a `register` callback and calls it once per thing.

A plugin module (the target of an entry point in the group ``ssl_core``) looks like::

    from ssl_core import hookimpl

    @hookimpl
    def ssl_register_methods(register):
        register(MyMethod)

Keep that module cheap to import: no torch at module level. Heavy code loads when a
method, transform or backbone is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from ssl_core.backbones.provider import BackboneProvider
    from ssl_core.method import Method
    from ssl_core.transforms.base import Transform

PROJECT = "ssl_core"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def ssl_register_methods(register: Callable[[type[Method]], Any]) -> None:
    """Register pretraining methods: call ``register(MethodSubclass)`` for each."""


@hookspec
def ssl_register_backbones(register: Callable[[BackboneProvider], Any]) -> None:
    """Register a backbone provider: call ``register(provider)``; it serves ``prefix/<name>``."""


@hookspec
def ssl_register_transforms(register: Callable[[type[Transform]], Any]) -> None:
    """Register view-making transforms: call ``register(TransformSubclass)`` for each."""


HOOK_KINDS = {
    "ssl_register_methods": "method",
    "ssl_register_backbones": "backbone provider",
    "ssl_register_transforms": "transform",
}
