"""The BackboneProvider interface, and a backbone resolved for a run."""

from __future__ import annotations

import difflib
import inspect
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ssl_core.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

    from ssl_core.backbones.backbone import Backbone


@dataclass(frozen=True)
class InputSize:
    """The image sizes a backbone takes: only ``fixed`` (height, width) when set (a ViT
    built for one size), else any size whose sides are multiples of ``multiple``."""

    fixed: tuple[int, int] | None = None
    multiple: int = 1


class BackboneProvider:
    """Serves ``<prefix>/<name>`` backbones, e.g. ``torchvision/resnet18``.

    ``list_names`` and ``build`` may import the library; the provider object itself is built
    at registration and must be cheap.
    """

    prefix: str = ""
    description: str = ""

    def list_names(self) -> list[str]:
        raise NotImplementedError

    def cached_names(self) -> list[str] | None:
        """What ``list_names`` returns, read without importing the library (so that listing
        and checking ``--model`` stay fast), or None where the provider has no such list.

        Optional: the default None makes ssl-core call ``list_names``. A name missing here
        is looked up in ``list_names`` before it is called unknown."""
        return None

    def build(self, name: str, **model_args: Any) -> Backbone:
        """A randomly initialised backbone; never downloads weights."""
        raise NotImplementedError

    def check_args(self, name: str, model_args: Mapping[str, Any]) -> None:
        """Raise ConfigError for ``model_args`` keys the backbone cannot take; called before
        any data is read. The default accepts every key: ``build`` then reports them."""

    def input_size(self, name: str, **model_args: Any) -> InputSize:
        """The image sizes ``build(name, **model_args)`` takes, for image_size "auto"; it
        should not build the model. Default: any size."""
        return InputSize()

    def any_size_args(self, name: str, **model_args: Any) -> dict[str, Any] | None:
        """For a backbone whose ``input_size`` is fixed: the ``model_args`` that build it for
        any size instead (a ViT's position embeddings interpolated to each input), which
        ssl-core adds when a method's views are not all of that size (DINO's local views).
        None, the default: it cannot; views of another size are then refused up front."""
        return None


def keyword_parameters(constructor: Callable[..., Any]) -> tuple[list[str], bool]:
    """The parameters of a function or class that a keyword can set, and whether it also
    takes ``**kwargs`` (then any key may be valid, and none can be refused)."""
    try:
        signature = inspect.signature(constructor)
    except (TypeError, ValueError):
        return [], True
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    names = [p.name for p in signature.parameters.values() if p.kind in kinds]
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    return names, open_ended


def returned_class_parameters(factory: Callable[..., Any]) -> list[str] | None:
    """The keyword parameters of the class ``factory`` is annotated to return (timm's and
    torchvision's builders pass their ``**kwargs`` on to it); None when that class is not
    known or takes any key."""
    try:
        model_class = typing.get_type_hints(factory).get("return")
    except Exception:  # an annotation that does not resolve: nothing to check against
        return None
    if not isinstance(model_class, type):
        return None
    names, open_ended = keyword_parameters(model_class)
    return None if open_ended else names


def check_model_args(
    model: str,
    model_args: Mapping[str, Any],
    valid: Iterable[str] | None,
    *,
    also: Iterable[str] = (),
    reserved: Mapping[str, str] | None = None,
) -> None:
    """Refuse keys that ssl-core sets itself (``reserved``: key -> why), and keys outside
    ``valid`` (the constructor's own, which the message lists) and ``also`` (the library's
    factory options). ``valid`` None: the constructor takes any key."""
    for key in model_args:
        if reserved and key in reserved:
            raise ConfigError(
                f"model_args.{key} cannot be set for {model}: {reserved[key]}. Remove it."
            )
    if valid is None:
        return
    shown = [key for key in valid if not (reserved and key in reserved)]
    unknown = [key for key in model_args if key not in shown and key not in set(also)]
    if not unknown:
        return
    hints = []
    for key in unknown:
        near = difflib.get_close_matches(key, shown, n=1, cutoff=0.6)
        if near:
            hints.append(f"Did you mean '{near[0]}' instead of '{key}'?")
    raise ConfigError(
        f"{model} does not take model_args {', '.join(repr(k) for k in unknown)}. "
        + "".join(f"{hint} " for hint in hints)
        + f"Its constructor takes: {', '.join(shown)}. Fix or remove the key."
    )


@dataclass(frozen=True)
class BackboneSource:
    """Where a run's backbone comes from: a provider and a name in it, or the user's own
    module. It travels with the run's configuration to every training process, so
    processes started for ``devices=N`` need no plugin lookup (and know providers that were
    registered in-process)."""

    name: str
    provider: BackboneProvider | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    module: nn.Module | None = None

    def build(self) -> Backbone:
        from ssl_core.backbones.backbone import from_module

        if self.module is not None:
            return from_module(self.module, self.name)
        assert self.provider is not None
        if not self.model_args:
            return self.provider.build(self.name.partition("/")[2])
        try:
            return self.provider.build(self.name.partition("/")[2], **self.model_args)
        except (TypeError, ValueError) as exc:
            # With model_args given, the constructor's complaint is most likely about them.
            raise ConfigError(
                f"{self.name} could not be built with model_args {self.model_args}: "
                f"{type(exc).__name__}: {str(exc).strip().rstrip('.')}. Change model_args as the "
                f"library's message says, then rerun (with --overwrite: the run's folder was "
                f"started)."
            ) from exc

    def input_size(self) -> InputSize:
        """What the backbone takes; a user's own module: any size (a wrong one fails the
        first step with a hint)."""
        if self.provider is None:
            return InputSize()
        return self.provider.input_size(self.name.partition("/")[2], **self.model_args)
