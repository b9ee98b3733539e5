from __future__ import annotations

import atexit
import functools
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ssl_core.plugins import ALLOWED_ENV, host

# Re-exported: the tests import these from conftest.
from ssl_core.testing.processes import SSL_SCRIPT, WIDE, allowing, run_ssl  # noqa: F401

TESTS = Path(__file__).parent
SHARED_DATA = Path(
    os.environ.get(
        "SSL_CORE_TEST_DATA", TESTS.parent.parent / "shared" / "data" / "cifar10-train-10k"
    )
)
# ``ssl pretrain`` options of a ResNet-18 run that takes seconds on a CPU (pretrain_args form).
TINY_RESNET = {
    "model": "torchvision/resnet18",
    "transform_args": "image_size=32",
    "method_args": ["hidden_dim=64", "output_dim=16"],
    "num_workers": 0,
    "accelerator": "cpu",
    "precision": "32-true",
}


# The entry points ssl-core's own tests see, whatever else is installed beside them.
CORE_PLUGINS = ("torchvision", "timm", "simclr", "byol", "dino")


@pytest.fixture(autouse=True)
def fresh_plugins(monkeypatch):
    """Each test sees the plugins as a new process would: only ssl-core's own (and those it
    adds with ``with_site``), also in the ``ssl`` processes it starts."""
    monkeypatch.setenv(ALLOWED_ENV, ",".join(CORE_PLUGINS))
    host.reset()
    yield
    host.reset()


def pretrain_args(**options: object) -> list[str]:
    """``ssl pretrain`` arguments from keywords: ``batch_size=32`` gives ``--batch-size 32``;
    a list value repeats the option (``method_args=["a=1", "b=2"]``)."""
    args = ["pretrain"]
    for key, value in options.items():
        for item in value if isinstance(value, list) else [value]:
            args += [f"--{key.replace('_', '-')}", str(item)]
    return args


def _install(source: Path, target: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    return target


class InstalledPlugins(dict):
    """tests/plugins/NAME installed with pip, each into its own directory, on first use."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def __missing__(self, name: str) -> Path:
        self[name] = _install(TESTS / "plugins" / name, self.root / name)
        return self[name]


@pytest.fixture(scope="session")
def installed_plugins(tmp_path_factory) -> dict[str, Path]:
    """Real distributions of third-party plugins (a working one, a broken one, ...: the
    folders of tests/plugins), each installed with pip into its own directory (added to
    sys.path or PYTHONPATH by the tests that want it)."""
    return InstalledPlugins(tmp_path_factory.mktemp("plugin-sites"))


@pytest.fixture
def with_site(monkeypatch):
    """Make an installed plugin directory visible to importlib.metadata in this process,
    and its entry points allowed here and in the ``ssl`` processes the test starts."""

    def add(path: Path) -> None:
        monkeypatch.syspath_prepend(str(path))
        for key, value in allowing(dict(os.environ), [path]).items():
            if key == ALLOWED_ENV:
                monkeypatch.setenv(key, value)
        host.reset()

    return add


CIFAR_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


def cifar_dir() -> Path:
    """The shared CIFAR-10 photographs, or, in a clone without ``../shared`` (a user's),
    stand-in JPEGs of the same layout made once per test session, so no test skips."""
    if SHARED_DATA.is_dir():
        return SHARED_DATA
    return _stand_in_photos()


@functools.cache
def _stand_in_photos(per_class: int = 130) -> Path:
    """32×32 JPEGs in ten class folders named as CIFAR-10's: each class a shape and a colour
    range of its own on a noisy background (so a kNN on them is above chance)."""
    from PIL import Image

    from ssl_core.demo import draw_shape

    root = Path(tempfile.mkdtemp(prefix="ssl-core-stand-in-cifar-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    shapes = ("circle", "square", "triangle", "stripes")
    for label, name in enumerate(CIFAR_CLASSES):
        folder = root / name
        folder.mkdir()
        rng = random.Random(label)
        tint = Image.new("RGB", (32, 32), tuple((label * 97 + 40 * c) % 256 for c in range(3)))
        for i in range(per_class):
            image = Image.blend(draw_shape(shapes[label % 4], rng), tint, 0.35)
            image.save(folder / f"{i:04d}.jpg", quality=90)
    return root


def spread_images(count: int) -> list[Path]:
    """``count`` images spread evenly over the sorted files, so every class is in."""
    files = sorted(cifar_dir().glob("*/*.jpg"))
    return files[:: len(files) // count][:count]


@pytest.fixture(scope="session")
def cifar_subset(tmp_path_factory) -> Path:
    """30 images of each CIFAR-10 class as symlinks (the scan must follow them)."""
    source = cifar_dir()
    root = tmp_path_factory.mktemp("cifar-subset")
    for class_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        target = root / class_dir.name
        target.mkdir()
        for image in sorted(class_dir.glob("*.jpg"))[:30]:
            (target / image.name).symlink_to(image)
    return root


def held_apart_cifar(per_class_bank: int = 80, per_class_query: int = 20):
    """Images never trained on (the last of each class): a kNN bank and queries."""
    from ssl_core.data.decode import decode_file

    source = cifar_dir()
    bank, bank_labels, queries, query_labels = [], [], [], []
    for label, class_dir in enumerate(sorted(p for p in source.iterdir() if p.is_dir())):
        images = sorted(class_dir.glob("*.jpg"))[-(per_class_bank + per_class_query) :]
        for i, path in enumerate(images):
            target, labels = (bank, bank_labels) if i < per_class_bank else (queries, query_labels)
            target.append(decode_file(path))
            labels.append(label)
    import torch

    return bank, torch.tensor(bank_labels), queries, torch.tensor(query_labels)
