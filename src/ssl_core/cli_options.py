"""Typer options made from a pydantic schema, so that a command's options are its schema's
fields: the same names, defaults, descriptions and choices, with no copy to keep in step.

Each field becomes ``--field-name``. Values are checked by the schema itself (the command
passes what was typed to ``validate_args(..., from_strings=True)``), so a type Typer cannot
express (``int | "auto"``) is read as text and shown with a metavar that says what it takes.
"""

from __future__ import annotations

import inspect
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

# How Typer names the plain types in help (``<int>``); a metavar of ours reads alike.
_TYPE_WORDS = {int: "int", float: "float", str: "str"}
# Parameter sources of a value the user gave (click's ParameterSource names).
_GIVEN = {"COMMANDLINE", "ENVIRONMENT", "PROMPT"}


@dataclass(frozen=True)
class SchemaOption:
    """One field of the schema as a command-line option."""

    name: str  # the field's name, also the Typer parameter's
    flag: str  # --field-name
    kind: str  # "flag" (a bool), "key_values" (a dict, KEY=VALUE repeated), "repeatable", "value"
    single_allowed: bool  # a repeatable field that also takes one value alone (``data``)
    parameter: inspect.Parameter  # what Typer builds the option from


def flag_name(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def schema_options(schema: type[BaseModel]) -> list[SchemaOption]:
    return [_option(name, field) for name, field in schema.model_fields.items()]


def signature(schema: type[BaseModel], leading: list[inspect.Parameter]) -> inspect.Signature:
    """The signature Typer reads to build a command: ``leading`` (the context, arguments),
    then one keyword parameter per schema field."""
    params = [*leading, *(option.parameter for option in schema_options(schema))]
    return inspect.Signature(params)


def given_values(ctx: typer.Context, options: list[SchemaOption], values: dict[str, Any]) -> dict:
    """The options the user typed (not those left at their defaults), as the schema takes
    them: a repeatable option of a field that also takes one value gets that value alone."""
    given: dict[str, Any] = {}
    for option in options:
        source = ctx.get_parameter_source(option.name)
        if source is None or source.name not in _GIVEN:
            continue
        value = values[option.name]
        if option.kind in ("repeatable", "key_values"):
            value = list(value or [])
            if not value:
                continue
            if option.single_allowed and len(value) == 1:
                value = value[0]
        given[option.name] = value
    return given


def _option(name: str, field: FieldInfo) -> SchemaOption:
    flag = flag_name(name)
    default = None if field.is_required() else field.default
    members = _members(field.annotation)
    plain = [m for m in members if m is not type(None)]
    help_text = field.description or ""
    annotation: Any
    metavar: str | None = None
    decls = [flag]
    if plain == [bool]:
        kind, annotation, cli_default = "flag", bool, default
        if default is not False:  # a flag that is on by default needs its "off" spelling
            decls = [f"{flag}/--no-{flag[2:]}"]
    elif any(typing.get_origin(m) is dict for m in plain):
        kind, annotation, cli_default, metavar = "key_values", list[str], None, "<KEY=VALUE>"
        help_text += " KEY=VALUE, repeatable; nested keys are dotted."
    elif any(typing.get_origin(m) is list for m in plain):
        kind, annotation, cli_default = "repeatable", list[str], None
        help_text += " Repeatable."
    else:
        kind = "value"
        annotation, metavar, cli_default = _scalar(plain, members, default)
    info = typer.Option(
        cli_default, *decls, help=help_text, metavar=metavar, show_default=default is not None
    )
    parameter = inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation
    )
    single_allowed = kind == "repeatable" and str in plain
    return SchemaOption(name, flag, kind, single_allowed, parameter)


def _scalar(plain: list[Any], members: list[Any], default: Any) -> tuple[Any, str | None, Any]:
    """(annotation Typer understands, metavar, default as Typer shows it) of a one-value field."""
    choices = [v for m in plain if typing.get_origin(m) is Literal for v in typing.get_args(m)]
    others = [m for m in plain if typing.get_origin(m) is not Literal]
    if choices and all(m is bool for m in others):
        # bool | "auto": a choice of words, read as a bool by the schema.
        words = [str(c) for c in choices] + (["true", "false"] if others else [])
        shown = str(default).lower() if isinstance(default, bool) else default
        return Literal[tuple(words)], None, shown
    none_is_a_choice = type(None) in members and default is not None
    if len(others) == 1 and not choices and not none_is_a_choice and others[0] in _TYPE_WORDS:
        return others[0], None, default
    # A union Typer cannot parse: text, checked by the schema, with a metavar that tells.
    words = [_TYPE_WORDS.get(m, getattr(m, "__name__", str(m))) for m in others]
    words += [str(c) for c in choices] + (["none"] if none_is_a_choice else [])
    return str, f"<{'|'.join(words)}>", default


def _members(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(annotation) for m in _members(a)]
    return [annotation]
