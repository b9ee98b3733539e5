"""Every "auto" argument replaced by its value, and the backbone fitted to the method's
views, once the images are counted and before anything is built or written: config.json
then records what the run used, every process trains with it, and a resume keeps it."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ssl_core.args import StrictArgs, validate_args
from ssl_core.config import ResolvedConfig
from ssl_core.errors import ConfigError
from ssl_core.run_info import RunInfo
from ssl_core.train.image_size import resolve_image_size

Size = tuple[int, int]


def settle(
    resolved: ResolvedConfig, files: Sequence[Path], run: RunInfo
) -> tuple[ResolvedConfig, list[str]]:
    """``resolved`` with nothing left "auto" that a plugin can settle, and the log lines
    that say what was chosen. Raises ConfigError for views the backbone cannot take."""
    resolved, notes = keep_resumed_choices(resolved)
    resolved, note = fit_backbone_to_views(resolved)
    notes += [note] if note else []
    resolved, note = resolve_image_size(resolved, files)
    notes += [note] if note else []
    method = resolved.method_cls(resolved.method_args)
    # A method that is no Method subclass has no resolve_auto.
    method_args = method.resolve_auto(run) if hasattr(method, "resolve_auto") else method.args
    settled = dataclasses.replace(
        resolved,
        method_args=method_args,
        transform_args=resolved.transform_args.resolve_auto(),
    )
    notes += chosen_notes(resolved, settled)
    check_view_sizes(settled)
    return settled, notes


def keep_resumed_choices(resolved: ResolvedConfig) -> tuple[ResolvedConfig, list[str]]:
    """On resume, each method or transform argument given as "auto" takes the value its
    run chose (see its config.json): the data may have changed since."""
    if not resolved.args.resume:
        return resolved, []
    try:
        saved: Any = json.loads((Path(resolved.args.out) / "config.json").read_text())
    except (OSError, ValueError):
        return resolved, []  # no usable config.json: the resume check says what is wrong
    notes, update = [], {}
    for section in ("method_args", "transform_args"):
        args: StrictArgs = getattr(resolved, section)
        chosen = saved.get(section) if isinstance(saved, dict) else None
        if not isinstance(chosen, dict):
            continue
        current = args.model_dump()
        kept = {
            key: chosen[key]
            for key, value in current.items()
            if value == "auto" and chosen.get(key) not in (None, "auto")
        }
        if not kept:
            continue
        try:
            update[section] = validate_args(type(args), {**current, **kept}, section)
        except ConfigError:
            continue  # a value this version refuses: chosen anew, the resume check compares
        notes += [
            f"{section}.{key} auto → {shown(value)} (as in the run being resumed)."
            for key, value in kept.items()
        ]
    return dataclasses.replace(resolved, **update), notes


def fit_backbone_to_views(resolved: ResolvedConfig) -> tuple[ResolvedConfig, str | None]:
    """A backbone built for one image size (a ViT), given views of other sizes, is built
    for any size when its provider knows how (timm: dynamic_img_size), unless the user set
    those model_args themselves."""
    source = resolved.backbone
    fixed = source.input_size().fixed
    if source.provider is None or fixed is None:
        return resolved, None
    sizes = view_sizes(resolved, provisional=True)
    if sizes is None or all(size == fixed for size in sizes):
        return resolved, None
    extra = source.provider.any_size_args(source.name.partition("/")[2], **source.model_args)
    if not extra or any(key in source.model_args for key in extra):
        return resolved, None  # check_view_sizes explains
    model_args = {**source.model_args, **extra}
    fitted = dataclasses.replace(
        resolved,
        args=resolved.args.model_copy(update={"model_args": model_args}),
        backbone=dataclasses.replace(source, model_args=model_args),
    )
    given = ", ".join(f"{key}={json.dumps(value)}" for key, value in extra.items())
    # With image_size "auto" the sizes are provisional: say what is sure.
    made = "of more than one size" if len(set(sizes)) > 1 else f"of {shown(sizes[0])}"
    return fitted, (
        f"model_args {given}: {source.name} is built for {shown(fixed)} images only, and the "
        f"{resolved.transform_cls.name} transform makes views {made}."
    )


def view_sizes(resolved: ResolvedConfig, provisional: bool = False) -> list[Size] | None:
    """The size of each view the transform makes; None for a transform that works one
    image at a time (its sizes are not known before it runs). ``provisional``: an
    image_size "auto" taken as the method's reference size."""
    args: Any = resolved.transform_args
    if provisional and getattr(args, "image_size", None) == "auto":
        args = validate_args(
            type(args),
            {**args.model_dump(), "image_size": args.reference_image_size},
            "transform_args",
        )
    batched = resolved.transform_cls(args).build_batched()
    if batched is None:
        return None
    return [tuple(recipe.size) for recipe in batched.recipes]


def check_view_sizes(resolved: ResolvedConfig) -> None:
    """Views the backbone cannot take stop the run here, before anything is written,
    instead of failing its first step."""
    sizes = view_sizes(resolved)
    takes = resolved.backbone.input_size()
    if sizes is None:
        return
    name, transform = resolved.backbone.name, resolved.transform_cls.name
    made = ", ".join(shown(size) for size in sorted(set(sizes), reverse=True))
    if takes.fixed is not None and any(size != takes.fixed for size in sizes):
        source = resolved.backbone
        extra = None
        if source.provider is not None:
            extra = source.provider.any_size_args(name.partition("/")[2], **source.model_args)
        if extra:
            keys = " and ".join(f"model_args.{key}" for key in extra)
            fix = f"remove {keys} (ssl-core then builds it for any size)"
        else:
            fix = f"build it for the view size with {size_key(name)}"
        if len(set(sizes)) > 1:
            fix += f", or make every view {shown(takes.fixed)} (transform_args)"
        else:
            fix += f", or set transform_args.image_size to {takes.fixed[0]}"
        raise ConfigError(
            f"{name} takes only {shown(takes.fixed)} images, but the {transform} transform "
            f"makes views of {made}: {fix}."
        )
    step = takes.multiple
    if step > 1 and any(side % step for size in sizes for side in size):
        raise ConfigError(
            f"{name} takes images whose sides are multiples of {step} px, but the "
            f"{transform} transform makes views of {made}: set the view sizes in "
            f"transform_args (image_size, and any other size it has) to multiples of {step}."
        )


def size_key(model: str) -> str:
    """The model_args key that sets a ViT's image size differs by library."""
    keys = {"torchvision": "model_args.image_size", "timm": "model_args.img_size"}
    library = model.partition("/")[0]
    if library in keys:
        return keys[library]
    return " or ".join(f"{key} ({name})" for name, key in keys.items())


def chosen_notes(before: ResolvedConfig, after: ResolvedConfig) -> list[str]:
    """One line for each method or transform argument that was "auto" and now has a value."""
    notes = []
    for section in ("method_args", "transform_args"):
        old, new = getattr(before, section).model_dump(), getattr(after, section).model_dump()
        notes += [
            f"{section}.{key} auto → {shown(new[key])}."
            for key, value in old.items()
            if value == "auto" and new.get(key) != "auto"
        ]
    return notes


def shown(value: Any) -> str:
    """A size as 32×32; anything else as it is."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return f"{value[0]}×{value[1]}"
    return str(value)
