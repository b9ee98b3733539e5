from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ssl_core.plugins import host

TESTS = Path(__file__).parent
SHARED_DATA = TESTS.parent.parent / "shared" / "data" / "cifar10-train-10k"
SSL_SCRIPT = Path(sys.executable).with_name("ssl")
WIDE = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}


@pytest.fixture(autouse=True)
def fresh_plugins():
    """Each test sees the plugins as a new process would."""
    host.reset()
    yield
    host.reset()


def run_ssl(
    *args: str, extra_path: list[Path] | None = None, env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run the installed ``ssl`` console script as a user would."""
    environment = {**os.environ, **WIDE, **(env or {})}
    if extra_path:
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(p) for p in extra_path] + [environment.get("PYTHONPATH", "")]
        )
    return subprocess.run(
        [str(SSL_SCRIPT), *args], capture_output=True, text=True, env=environment, timeout=timeout
    )


def pretrain_args(**options: object) -> list[str]:
    """``ssl pretrain`` arguments from keywords: ``batch_size=32`` gives ``--batch-size 32``;
    a list value repeats the option (``method_args=["a=1", "b=2"]``)."""
    args = ["pretrain"]
    for key, value in options.items():
        for item in value if isinstance(value, list) else [value]:
            args += [f"--{key.replace('_', '-')}", str(item)]
    return args


def sigkill_during_run(args: list[str], metrics: Path, after_lines: int) -> None:
    """Start ``ssl ARGS`` and SIGKILL it, with every process it started, once ``metrics``
    holds ``after_lines`` steps: a run killed as a machine failure would kill it."""
    import signal
    import time

    process = subprocess.Popen(
        [str(SSL_SCRIPT), *args],
        env={**os.environ, **WIDE},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= after_lines:
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


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


@pytest.fixture(scope="session")
def installed_plugins(tmp_path_factory) -> dict[str, Path]:
    """Real distributions of a working and a broken third-party plugin, each installed with
    pip into its own directory (added to sys.path or PYTHONPATH by the tests that want it)."""
    root = tmp_path_factory.mktemp("plugin-sites")
    return {
        name: _install(TESTS / "plugins" / name, root / name)
        for name in ("fake_method", "broken_plugin")
    }


@pytest.fixture
def with_site(monkeypatch):
    """Make an installed plugin directory visible to importlib.metadata in this process."""

    def add(path: Path) -> None:
        monkeypatch.syspath_prepend(str(path))

    return add


def cifar_dir() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared CIFAR-10 subset not found at {SHARED_DATA}")
    return SHARED_DATA


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
