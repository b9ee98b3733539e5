"""``pretrain``'s own arguments have one source, the PretrainArgs schema: the CLI's options,
``ssl_core.pretrain``'s signature and docstring, and the generated CLI reference all say what
it says, and every field can be set from the command line."""

from __future__ import annotations

import inspect
import json
import re

import pytest
import typer.main
from typer.testing import CliRunner

import ssl_core
from conftest import TINY_RESNET, WIDE, pretrain_args, run_ssl
from lifecycle_support import make_images
from ssl_core.cli import app
from ssl_core.docs import cli_page, format_value
from ssl_core.pretrain_args import PretrainArgs

FIELDS = PretrainArgs.model_fields


def pretrain_click_command():
    return typer.main.get_command(app).commands["pretrain"]  # type: ignore[attr-defined]


def flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def shown_default(value):
    """A default as a user reads it: what Python, the help and the docs show alike."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def test_every_field_has_a_description():
    for name, field in FIELDS.items():
        assert field.description, name


def test_pretrain_signature_is_the_schema():
    parameters = inspect.signature(ssl_core.pretrain).parameters
    assert set(parameters) == set(FIELDS)
    for name, field in FIELDS.items():
        default = parameters[name].default
        if field.is_required():
            assert default is inspect.Parameter.empty, name
        else:
            assert default == field.default and type(default) is type(field.default), name


def test_pretrain_docstring_describes_every_field_from_the_schema():
    doc = inspect.getdoc(ssl_core.pretrain) or ""
    for name, field in FIELDS.items():
        line = next((ln for ln in doc.splitlines() if ln.strip().startswith(f"{name}: ")), "")
        assert field.description in line, name
        assert ("required" if field.is_required() else repr(field.default)) in line, name


def test_cli_options_are_the_schema_fields():
    command = pretrain_click_command()
    options = {p.name: p for p in command.params if p.name not in ("help", "pairs")}
    assert set(options) == set(FIELDS)
    for name, field in FIELDS.items():
        option = options[name]
        assert option.opts == [flag(name)], name
        assert option.help.startswith(field.description), name
        if not field.is_required() and field.default is not None:
            assert shown_default(option.default) == shown_default(field.default), name


def help_lines(*args: str) -> list[str]:
    result = CliRunner().invoke(app, ["pretrain", *args, "--help"], env={**WIDE, "COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_pretrain_help_shows_each_fields_description_and_default():
    lines = help_lines()
    for name, field in FIELDS.items():
        pattern = re.compile(rf"^│ {re.escape(flag(name))}(?![\w-])")  # its row in the panel
        row = next((line for line in lines if pattern.search(line)), None)
        assert row is not None, name
        assert field.description in row, name
        if field.is_required() or field.default is None:
            assert "[default:" not in row, name
        elif field.annotation is not bool:  # a flag's default is spelt as the flag
            assert f"[default: {shown_default(field.default)}]" in row, name


def test_generated_cli_reference_shows_each_fields_description_and_default():
    page = cli_page()
    start = page.index("## `ssl pretrain`")
    end = page.find("\n## `", start)
    section = page[start : end if end > 0 else None].splitlines()
    for name, field in FIELDS.items():
        row = next(line for line in section if line.startswith(f"| `{flag(name)}`"))
        assert field.description in row, name
        if not field.is_required() and field.default is not None:
            assert f"`{format_value(field.default)}`" in row, name


def test_compile_help_says_what_the_schema_says():
    row = next(line for line in help_lines() if "--compile" in line)
    assert "measured slower on CPUs" in row


def test_choices_of_literal_fields_are_offered():
    text = "\n".join(help_lines())
    assert "<auto|cpu|cuda>" in text
    assert "<auto|32-true|bf16-mixed>" in text
    assert "<auto|true|false>" in text  # cache_images: bool | "auto"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--cache-images", "sometimes"], "'sometimes' is not one of"),
        (["--num-workers", "many"], "num_workers"),
        (["--checkpoint-every-minutes", "soon"], "checkpoint_every_minutes"),
    ],
)
def test_a_wrong_value_is_refused_with_one_message(args, expected, tmp_path):
    result = CliRunner().invoke(
        app,
        ["pretrain", "--out", str(tmp_path / "o"), "--data", str(tmp_path)]
        + ["--model", "torchvision/resnet18", *args],
        env=WIDE,
    )
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output


def test_options_missing_before_reach_the_run_from_the_cli(tmp_path):
    images = make_images(tmp_path / "images", count=8, side=40)
    out = tmp_path / "run"
    result = run_ssl(
        *pretrain_args(out=out, data=images, epochs=1, batch_size=4, **TINY_RESNET),
        "--cache-images",
        "false",
        "--no-augment-on-device",
        "--checkpoint-every-steps",
        "1",
        "--checkpoint-every-minutes",
        "none",
    )
    assert result.returncode == 0, result.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["cache_images"] is False
    assert config["augment_on_device"] is False
    assert config["checkpoint_every_steps"] == 1
    assert config["checkpoint_every_minutes"] is None
    assert json.loads((out / "summary.json").read_text())["steps"] == 2


def test_an_option_and_a_pair_for_a_new_option_must_agree(tmp_path):
    result = CliRunner().invoke(
        app,
        ["pretrain", "--out", "o", "--data", "d", "--model", "m", "cache_images=true"]
        + ["--cache-images", "false"],
        env=WIDE,
    )
    assert result.exit_code == 2, result.output
    assert "--cache-images false and cache_images=true disagree" in result.output
