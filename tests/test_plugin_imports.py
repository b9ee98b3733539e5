"""First-party plugins use only what a third party could rely on: the public modules of
ssl_core (``ssl_core``, ``ssl_core.transforms``, ``ssl_core.distributed``,
``ssl_core.schedules``) and the names those modules export."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent
PUBLIC_MODULES = ("ssl_core", "ssl_core.transforms", "ssl_core.distributed", "ssl_core.schedules")


def public_names(module_name: str) -> set[str]:
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:  # a module without __all__: its functions and classes without "_"
        names = [n for n, v in vars(module).items() if not n.startswith("_") and callable(v)]
    submodules = {m.rpartition(".")[2] for m in PUBLIC_MODULES if m.startswith(f"{module_name}.")}
    return set(names) | submodules


def private_imports(source: str) -> list[str]:
    """Each ``import ssl_core...`` or ``from ssl_core... import ...`` in ``source`` that
    names a module or a name outside the public interface."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                root = alias.name.split(".")[0]
                if root == "ssl_core" and alias.name not in PUBLIC_MODULES:
                    found.append(f"line {node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "ssl_core":
                continue
            if node.module not in PUBLIC_MODULES:
                found.append(f"line {node.lineno}: from {node.module} import ...")
                continue
            allowed = public_names(node.module)
            found += [
                f"line {node.lineno}: from {node.module} import {alias.name}"
                for alias in node.names
                if alias.name not in allowed
            ]
    return found


def plugin_sources() -> list[Path]:
    """Every module of every plugin under plugins/ (SimCLR, and those added later), and of
    the plugin template a third party copies."""
    return sorted(
        [
            *(REPO / "plugins").glob("*/src/**/*.py"),
            *(REPO / "examples/plugin-template").glob("src/**/*.py"),
        ]
    )


def test_every_plugin_directory_is_checked():
    first_party = [p for p in plugin_sources() if p.is_relative_to(REPO / "plugins")]
    assert any(p.is_relative_to(REPO / "examples/plugin-template") for p in plugin_sources())
    plugins = {p.relative_to(REPO / "plugins").parts[0] for p in first_party}
    expected = {p.name for p in (REPO / "plugins").iterdir() if (p / "src").is_dir()}
    assert "simclr" in plugins and plugins == expected


@pytest.mark.parametrize("path", plugin_sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_plugins_import_only_public_ssl_core(path):
    assert private_imports(path.read_text(encoding="utf-8")) == []


def test_the_check_finds_private_imports():
    source = (
        "import ssl_core.train.loop\n"
        "from ssl_core.train.global_batchnorm import GlobalBatchNorm\n"
        "from ssl_core import train, Method, RunInfo, distributed\n"
        "from ssl_core.transforms import functional, ColorJitter\n"
        "from ssl_core.distributed import dist, gather_with_gradient\n"
        "import ssl_core, ssl_core.schedules\n"
        "from . import sibling\n"
    )
    assert private_imports(source) == [
        "line 1: import ssl_core.train.loop",
        "line 2: from ssl_core.train.global_batchnorm import ...",
        "line 3: from ssl_core import train",
        "line 4: from ssl_core.transforms import functional",
        "line 5: from ssl_core.distributed import dist",
    ]
