"""Small real runs for the method-lifecycle tests: a tiny backbone, a few image files made
here, and in-process registration of a method as an installed plugin would register it.

The methods of the two-process tests live at module level in the test files: the spawned
processes import them by reference (``test_x.SomeMethod``)."""

from __future__ import annotations

import contextlib
import json
import random
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ssl_core import BackboneProvider, Method, StrictArgs, hookimpl
from ssl_core.plugins import host
from ssl_core.testing import tiny_net

IMAGES = 32
IMAGE_SIDE = 20


def make_images(folder: Path, count: int = IMAGES, side: int = IMAGE_SIDE) -> Path:
    """``count`` PNG files of seeded noise in two class folders."""
    from PIL import Image

    rng = random.Random(0)
    for i in range(count):
        target = folder / f"class{i % 2}"
        target.mkdir(parents=True, exist_ok=True)
        pixels = bytes(rng.randrange(256) for _ in range(side * side * 3))
        Image.frombytes("RGB", (side, side), pixels).save(target / f"{i:03d}.png")
    return folder


def small_run(**options: Any) -> dict[str, Any]:
    """pretrain's arguments for a run of seconds; ``options`` override them."""
    return {
        "model": tiny_net(),
        "transform_args": {"image_size": 16},
        "optim_args": {"name": "sgd", "lr": 0.5, "momentum": 0.0, "weight_decay": 0.0},
        "batch_size": 8,
        "epochs": 2,
        "num_workers": 0,
        "precision": "32-true",
        "accelerator": "cpu",
        "devices": 1,
        **options,
    }


def simple_method(method_name: str, build: Any, **attributes: Any) -> type[Method]:
    """A Method class whose ``build(backbone, run)`` calls ``build``."""

    def build_module(self: Method, backbone: Any, run: Any) -> Any:
        return build(backbone, run)

    namespace = {
        "name": method_name,
        "args_model": StrictArgs,
        "transform": "simclr",
        "build": build_module,
        **attributes,
    }
    return type(f"{method_name.title()}Method", (Method,), namespace)


@contextlib.contextmanager
def registered(*methods: type[Method], providers: tuple[Any, ...] = ()) -> Iterator[None]:
    """Methods and backbone providers registered as one plugin, for the ``with`` block."""
    plugin = types.ModuleType("lifecycle_test_plugin")
    plugin.ssl_register_methods = hookimpl(lambda register: [register(m) for m in methods])
    if providers:
        plugin.ssl_register_backbones = hookimpl(lambda register: [register(p) for p in providers])
    host.register(plugin, name="lifecycle-test-plugin")
    try:
        yield
    finally:
        host.unregister("lifecycle-test-plugin")


def read_metrics(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def load_checkpoint(out: Path) -> dict[str, Any]:
    import torch

    return torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)


def load_export(out: Path) -> dict[str, Any]:
    import torch

    return torch.load(out / "exported_models" / "exported_last.pt", weights_only=True)


class TinyProvider(BackboneProvider):
    """Serves ``tiny/net``: a provider a plugin would register (module level, so that the
    processes of a two-process run can unpickle it)."""

    prefix = "tiny"
    description = "Tiny conv nets for tests."

    def list_names(self) -> list[str]:
        return ["net"]

    def build(self, name: str, **model_args: Any) -> Any:
        from ssl_core import Backbone

        return Backbone(tiny_net(), 8, f"tiny/{name}")
