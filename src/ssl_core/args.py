"""Argument schemas: a strict pydantic base and the ``key=value`` parsing used by the CLI.

Every error names the full dotted key (``method_args.tempreature``) and lists the valid keys,
so a typo is fixed from the message alone.
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pydantic
from pydantic import BaseModel, ConfigDict

from ssl_core.errors import ConfigError

if TYPE_CHECKING:
    from typing_extensions import Self


class StrictArgs(BaseModel):
    """Base of every argument schema: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def resolve_auto(self) -> Self:
        """These arguments with each "auto" that the other arguments decide replaced by its
        value, so that config.json records what a run used (e.g. DINO's local view size,
        from image_size). A run calls it once image_size "auto" is settled. Default: as is."""
        return self


def flat_fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, FieldInfo) for every leaf field, descending into nested schemas."""
    rows: list[tuple[str, Any]] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        nested = _nested_model(field.annotation)
        if nested is not None:
            rows.extend(flat_fields(nested, prefix=f"{key}."))
        else:
            rows.append((key, field))
    return rows


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def type_name(annotation: Any) -> str:
    """A readable name for a field's type: ``float``, ``tuple[float, float]``, ``'a' | 'b'``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "None"
    if origin is None:
        return getattr(annotation, "__name__", str(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(annotation))
    args = ", ".join("..." if a is Ellipsis else type_name(a) for a in typing.get_args(annotation))
    return f"{getattr(origin, '__name__', str(origin))}[{args}]"


def parse_key_values(pairs: Iterable[str], option: str) -> dict[str, Any]:
    """Turn ``["a=1", "b.c=x"]`` into ``{"a": "1", "b": {"c": "x"}}``; values stay strings."""
    result: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(
                f"{option}: '{pair}' is not of the form KEY=VALUE (e.g. {option} temperature=0.2)."
            )
        key, value = pair.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"{option}: '{pair}' has an empty key.")
        before = get_dotted(result, key)
        if before is not None and not same_value(before, value):
            shown = "" if option == "KEY=VALUE" else f"{option} "
            raise ConfigError(
                f"{shown}{key}={before} and {shown}{key}={value} disagree: give it once."
            )
        set_dotted(result, key, value)
    return result


def get_dotted(source: Mapping[str, Any], dotted_key: str) -> Any:
    """``source["a"]["b"]`` for ``"a.b"``, or None where it is not set."""
    node: Any = source
    for part in dotted_key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def same_value(a: Any, b: Any) -> bool:
    """Whether two spellings of a setting mean the same: ``"0.10"`` and ``0.1``, ``"true"``
    and ``True``, ``"a,b"`` and ``["a", "b"]`` do."""
    return a == b or _canonical(a) == _canonical(b)


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    if not isinstance(value, str):
        return value
    text = value.strip()
    if _looks_listy(text):
        return [_canonical(part) for part in text.strip("[]()").split(",") if part.strip()]
    try:
        return json.loads(text.lower() if text.lower() in ("true", "false") else text)
    except ValueError:
        return text.strip("'\"")


def set_dotted(target: dict[str, Any], dotted_key: str, value: Any) -> None:
    """Set ``target["a"]["b"] = value`` for ``"a.b"``, creating the inner dicts."""
    *parents, leaf = dotted_key.split(".")
    node = target
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"'{dotted_key}': '{part}' was given a value and sub-keys.")
        node = child
    node[leaf] = value


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge two nested dicts; ``override`` wins."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def validate_args(
    model: type[BaseModel],
    values: Mapping[str, Any] | BaseModel | None,
    prefix: str,
    *,
    from_strings: bool = False,
    base: BaseModel | None = None,
) -> Any:
    """Validate ``values`` against ``model``; raise one ConfigError that names dotted keys.

    ``from_strings`` is for values typed on a command line: ``"0.2"`` becomes a float, and a
    sequence field takes ``"0.08,1.0"`` or ``"[0.08, 1.0]"``. ``base`` holds defaults that
    replace the schema's own (a method's defaults); the given values override them.
    """
    if base is not None:
        given = validate_args(model, values, prefix, from_strings=from_strings)
        values = merge(base.model_dump(), given.model_dump(exclude_unset=True))
        from_strings = False
    if values is None:
        values = {}
    if isinstance(values, BaseModel):
        values = values.model_dump()
    if not isinstance(values, Mapping):
        raise ConfigError(
            f"{prefix} must be a mapping of argument names to values, got {values!r}."
        )
    try:
        if from_strings:
            # pydantic's lax mode turns "0.2" into a float and "true" into a bool.
            return model.model_validate(_split_sequences(model, dict(values)))
        return model.model_validate(dict(values))
    except pydantic.ValidationError as exc:
        raise ConfigError(_describe(exc, model, prefix)) from None


def _split_sequences(model: type[BaseModel], values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        field = model.model_fields.get(key)
        if field is None:
            out[key] = value
            continue
        nested = _nested_model(field.annotation)
        if nested is not None and isinstance(value, dict):
            out[key] = _split_sequences(nested, value)
        elif isinstance(value, str) and _is_sequence(field.annotation) and _looks_listy(value):
            text = value.strip().strip("[]()")
            out[key] = [part.strip() for part in text.split(",") if part.strip()]
        elif (
            isinstance(value, str)
            and value.strip().lower() in ("none", "null")
            and _optional(field.annotation)
        ):
            out[key] = None
        else:
            out[key] = value
    return out


def _is_sequence(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (tuple, list):
        return True
    return any(_is_sequence(a) for a in typing.get_args(annotation) if origin is not typing.Literal)


def _looks_listy(text: str) -> bool:
    return "," in text or text.strip().startswith(("[", "("))


def _optional(annotation: Any) -> bool:
    return type(None) in typing.get_args(annotation)


def _describe(exc: pydantic.ValidationError, model: type[BaseModel], prefix: str) -> str:
    def dotted(*parts: str) -> str:
        return ".".join(p for p in (prefix, *parts) if p)

    valid = [key for key, _ in flat_fields(model)]
    problems: dict[str, list[str]] = {}
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        if error["type"] == "extra_forbidden":
            near = difflib.get_close_matches(".".join(loc), valid, n=1, cutoff=0.6)
            hint = f" Did you mean '{dotted(near[0])}'?" if near else ""
            problems[f"Unknown argument '{dotted(*loc)}'.{hint}"] = []
        else:
            key = dotted(*_field_path(model, loc))
            problems.setdefault(f"Invalid value for '{key}' (got {error.get('input')!r}):", [])
            problems[f"Invalid value for '{key}' (got {error.get('input')!r}):"].append(
                error["msg"][0].lower() + error["msg"][1:]
            )
    lines = [
        f"{head} {' or '.join(dict.fromkeys(msgs))}." if msgs else head
        for head, msgs in problems.items()
    ]
    if any(error["type"] == "extra_forbidden" for error in exc.errors()):
        lines.append(f"Valid keys{' for ' + prefix if prefix else ''}: {', '.join(valid)}.")
    else:
        # Only values were wrong: say what each of those keys accepts instead.
        fields = dict(flat_fields(model))
        for error in exc.errors():
            key = ".".join(_field_path(model, [str(part) for part in error["loc"]]))
            field = fields.get(key)
            accepts = f"'{dotted(key)}' takes {type_name(field.annotation)}" if field else ""
            if field is not None and field.description:
                accepts += f" ({field.description.rstrip('.')})"
            if accepts and f"{accepts}." not in lines:
                lines.append(f"{accepts}.")
    return " ".join(lines)


def _field_path(model: type[BaseModel] | None, loc: list[str]) -> list[str]:
    """The field names in a pydantic error location, without union-member or index parts."""
    path = []
    for part in loc:
        if model is None or part not in model.model_fields:
            break
        path.append(part)
        model = _nested_model(model.model_fields[part].annotation)
    return path or loc[:1]


def field_problems(model: type[BaseModel]) -> list[str]:
    """Schema rules every plugin's args must follow: a default and a description for each field."""
    problems = []
    for key, field in flat_fields(model):
        if field.is_required():
            problems.append(f"'{key}' has no default")
        if not field.description:
            problems.append(f"'{key}' has no description")
    return problems
