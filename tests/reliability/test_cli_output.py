"""What the command line prints must be usable as printed: model names listed without loading
torch, argument keys never cut short at any terminal width, a suggested command that still
runs when copied from an 80-column terminal."""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import re
import shlex
import subprocess
import sys

import pytest
from rich.console import Console
from typer.testing import CliRunner

from conftest import WIDE, run_ssl
from ssl_core.cli import app

HEAVY_MODULES = ("torch", "torchvision", "timm")

# Runs one CLI command in a fresh interpreter and reports which heavy modules it loaded.
CLI_PROBE = """
import json, sys
sys.argv = ["ssl", *{args!r}]
from ssl_core.cli import app
try:
    app()
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)
"""


def run_probe(args: list[str], tmp_path) -> tuple[list[str], list[str]]:
    """(stdout lines, heavy modules imported) of ``ssl ARGS`` with an empty user cache, so
    only what ships with ssl-core can spare the import."""
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), **WIDE}
    result = subprocess.run(
        [sys.executable, "-c", CLI_PROBE.format(args=args, heavy=HEAVY_MODULES)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.splitlines(), json.loads(result.stderr.strip().splitlines()[-1])


# --- 1. listing models without torch ------------------------------------------------------


def test_models_list_imports_no_library_yet_lists_what_the_libraries_list(tmp_path):
    from ssl_core.backbones.timm_backbones import TimmBackbones
    from ssl_core.backbones.torchvision_backbones import TorchvisionBackbones

    listed, heavy = run_probe(["models", "list"], tmp_path)
    assert heavy == [], f"`ssl models list` imported {heavy}"
    # The libraries' own answers, with the libraries imported here.
    expected = sorted(
        f"{provider.prefix}/{name}"
        for provider in (TorchvisionBackbones(), TimmBackbones())
        for name in provider.list_names()
    )
    assert listed == expected
    assert not (tmp_path / "cache").exists(), "the shipped lists should have served"


def test_shipped_name_lists_match_the_installed_libraries():
    from ssl_core.backbones.name_lists import SHIPPED_DIR, list_file_name, read_names, shipped_lists

    for distribution, list_names in shipped_lists().items():
        version = importlib.metadata.version(distribution)
        shipped = read_names(SHIPPED_DIR / list_file_name(distribution, version))
        assert shipped == list_names(), (
            f"the model names shipped for {distribution} {version} are missing or stale: "
            "run `python -m ssl_core.backbones.name_lists`"
        )


def test_model_validation_imports_no_library(tmp_path):
    code = (
        "import json, sys\n"
        "from ssl_core.plugins import host\n"
        "from ssl_core.errors import UnknownNameError\n"
        "for name in ('torchvision/resnet18', 'timm/vit_small_patch16_224'):\n"
        "    host.registry.resolve_model(name)\n"
        f"print(json.dumps(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)))\n"
        "try:\n"
        "    host.registry.resolve_model('torchvision/resnet181')\n"
        "except UnknownNameError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)},
        timeout=120,
    )
    heavy, error = result.stdout.splitlines()[:2]
    assert json.loads(heavy) == [], result.stderr[-2000:]
    # An unknown name is still checked against the library itself, and still suggests.
    assert "Unknown model 'torchvision/resnet181'" in error and "resnet18" in error


def test_a_list_is_cached_per_version_where_none_is_shipped(tmp_path, monkeypatch):
    from ssl_core.backbones.name_lists import library_names

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    version = importlib.metadata.version("pluggy")
    # pluggy: any installed distribution; its module is imported here, so name one that is not.
    where = {"module": "a_module_not_imported", "shipped_dir": tmp_path / "nothing-shipped"}
    assert library_names("pluggy", lambda: ["b", "a"], **where) == ["b", "a"]
    assert (tmp_path / "cache" / "ssl-core" / "model-names" / f"pluggy-{version}.txt").is_file()

    def must_not_be_asked() -> list[str]:
        raise AssertionError("the cached list should have answered")

    assert library_names("pluggy", must_not_be_asked, **where) == ["b", "a"]


# --- 2. argument tables keep every key whole ------------------------------------------------


def argument_rows(method: str) -> list[tuple[str, ...]]:
    """Every (key, type, default, description) `ssl methods show METHOD` prints."""
    from ssl_core.config import method_transform_defaults
    from ssl_core.docs import schema_rows
    from ssl_core.optimizer_args import OptimizerArgs
    from ssl_core.plugins import host

    method_cls = host.registry.get_method(method)
    transform_cls, transform_defaults = method_transform_defaults(method_cls)
    return [
        *schema_rows(method_cls.args_model),
        *schema_rows(transform_cls.args_model, transform_defaults),
        *schema_rows(OptimizerArgs, method_cls.default_optimizer),
    ]


def transform_rows(name: str) -> list[tuple[str, ...]]:
    """What `ssl transforms show NAME` prints: the transform's own defaults."""
    from ssl_core.docs import schema_rows
    from ssl_core.plugins import host

    return schema_rows(host.registry.get_transform(name).args_model)


def assert_nothing_cut(output: str, rows: list[tuple[str, ...]]) -> None:
    assert "…" not in output
    for key, _, default, _ in rows:
        # Whole: not a prefix of a longer key, not split over two lines.
        assert re.search(rf"(?<![\w.]){re.escape(key)}(?![\w.])", output), key
        if " " not in default:  # defaults with spaces may wrap at them
            assert default in output, (key, default)


@pytest.mark.parametrize("columns", [60, 80, 120])
@pytest.mark.parametrize("method", ["simclr", "byol"])
def test_method_help_shows_every_key_whole(method, columns):
    runner = CliRunner()
    env = {**WIDE, "COLUMNS": str(columns)}
    rows = argument_rows(method)
    for args in (
        ["methods", "show", method],
        ["pretrain", "--method", method, "--help"],
    ):
        result = runner.invoke(app, args, env=env)
        assert result.exit_code == 0, result.output
        # In --help, from where the method's own tables start (Typer's panels come first).
        assert_nothing_cut(result.output[result.output.index(f"{method}: ") :], rows)
    transform = runner.invoke(app, ["transforms", "show", method], env=env)
    assert transform.exit_code == 0, transform.output
    assert_nothing_cut(transform.output, transform_rows(method))


def test_keys_whole_in_a_real_80_column_terminal():
    result = run_ssl("methods", "show", "simclr", env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    assert_nothing_cut(result.stdout, argument_rows("simclr"))
    assert max(len(line) for line in result.stdout.splitlines() if "┃" in line) <= 80


def test_plugin_names_whole_at_60_columns():
    from ssl_core.plugins import host

    result = CliRunner().invoke(app, ["plugins"], env={**WIDE, "COLUMNS": "60"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    host.registry  # noqa: B018
    for name in host.plugins:
        assert re.search(rf"│ {re.escape(name)} +│", result.output), name


# --- 3. the demo's suggested command survives copying ---------------------------------------

EXPECTED_NEXT = [
    *("ssl", "pretrain", "--out", "out/mine", "--data", "YOUR_IMAGES"),
    *("--model", "torchvision/resnet18", "--method", "simclr"),
]


def printed_next_command(columns: int) -> list[str]:
    from ssl_core.demo import print_next_command

    buffer = io.StringIO()
    print_next_command(Console(file=buffer, width=columns, highlight=False))
    lines = buffer.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if "ssl pretrain" in line)
    return lines[start:]


def test_demo_next_command_copies_whole_at_80_columns():
    lines = printed_next_command(80)
    assert all(len(line) <= 80 for line in lines), lines  # the terminal wraps nothing
    joined = " ".join(line.removesuffix("\\").strip() for line in lines)
    assert shlex.split(joined) == EXPECTED_NEXT
    # Pasted as printed, a shell reads one command with these arguments.
    pasted = "\n".join(lines)
    shell = subprocess.run(
        ["bash", "-c", 'ssl() { printf "%s\\n" ssl "$@"; }\n' + pasted],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert shell.stdout.splitlines() == EXPECTED_NEXT, shell.stderr
    # And ssl parses them.
    import typer.main

    pretrain = typer.main.get_command(app).commands["pretrain"]  # type: ignore[attr-defined]
    pretrain.make_context("pretrain", EXPECTED_NEXT[2:])
