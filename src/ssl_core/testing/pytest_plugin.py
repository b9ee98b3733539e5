"""ssl-core's pytest fixtures, active wherever ssl-core is installed (entry point
``pytest11``): ``ssl_image_folder`` and ``ssl_register_plugin``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ssl_core.testing.images import write_image_folder


@pytest.fixture
def ssl_image_folder(tmp_path: Path) -> Callable[..., Path]:
    """A factory: ``ssl_image_folder(count=32, size=32, classes=0)`` writes ``count`` real
    JPEGs of ``size`` px under the test's tmp_path, in one flat folder, or spread over
    ``classes`` subfolders for labelled data, and returns the folder. Each call makes a new
    folder."""
    made = 0

    def make(count: int = 32, size: int = 32, classes: int = 0) -> Path:
        nonlocal made
        made += 1
        folder = tmp_path / f"ssl-images-{made}"
        return write_image_folder(folder, count=count, size=size, classes=classes)

    return make


@pytest.fixture
def ssl_register_plugin() -> Iterator[Callable[..., str]]:
    """A factory: ``ssl_register_plugin(module_or_object, name=None)`` registers a plugin
    object (a module, or any object with ``ssl_core.hookimpl`` functions) in
    ``ssl_core.plugins.host`` for this test, as an installed plugin would be, and returns
    the name it was registered under (by default the module's name). It is unregistered,
    and the plugins reset, when the test ends."""
    from ssl_core.plugins import host

    names: list[str] = []

    def register(plugin: ModuleType | Any, name: str | None = None) -> str:
        name = name or getattr(plugin, "__name__", None) or f"test-plugin-{id(plugin)}"
        host.register(plugin, name=name)
        names.append(name)
        return name

    yield register
    for name in names:
        with contextlib.suppress(ValueError):  # the test unregistered it itself
            host.unregister(name)
    host.reset()
