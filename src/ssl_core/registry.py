"""Name -> thing lookups for methods, transforms and backbones, built once from the hooks."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ssl_core.args import field_problems
from ssl_core.backbones.provider import BackboneProvider
from ssl_core.errors import PluginError, UnknownNameError
from ssl_core.hookspecs import HOOK_KINDS
from ssl_core.method import Method
from ssl_core.transforms.base import Transform

if TYPE_CHECKING:
    import pluggy

    from ssl_core.backbones.backbone import Backbone
    from ssl_core.plugins import PluginInfo


@dataclass(frozen=True)
class Registry:
    """An immutable snapshot: name -> (plugin name, registered object)."""

    methods: dict[str, tuple[str, type[Method]]]
    transforms: dict[str, tuple[str, type[Transform]]]
    backbones: dict[str, tuple[str, BackboneProvider]]

    def get_method(self, name: str) -> type[Method]:
        if name not in self.methods:
            raise UnknownNameError(
                "method", name, self.methods, "`ssl plugins` shows what is installed."
            )
        return self.methods[name][1]

    def get_transform(self, name: str) -> type[Transform]:
        if name not in self.transforms:
            raise UnknownNameError("transform", name, self.transforms)
        return self.transforms[name][1]

    def list_methods(self, filter: str = "") -> list[str]:
        return match(self.methods, filter)

    def list_transforms(self, filter: str = "") -> list[str]:
        return match(self.transforms, filter)

    def list_models(self, filter: str = "") -> list[str]:
        names: list[str] = []
        for prefix, (_, provider) in sorted(self.backbones.items()):
            # "timm/*" should not import torchvision to list it.
            if "/" in filter and not fnmatch.fnmatch(prefix, filter.split("/", 1)[0]):
                continue
            names.extend(f"{prefix}/{n}" for n in listed_names(provider))
        return match(names, filter)

    def resolve_model(self, name: str) -> tuple[BackboneProvider, str]:
        """The provider serving ``prefix/model`` and the model's name within it."""
        prefix, _, short = name.partition("/")
        if not short or prefix not in self.backbones:
            raise UnknownNameError(
                "model",
                name,
                (f"{p}/<name>" for p in self.backbones),
                "Model names look like 'torchvision/resnet18' or 'timm/resnet18'; "
                "`ssl models list` shows them all.",
            )
        provider = self.backbones[prefix][1]
        known = provider.cached_names()
        if known is None or short not in known:
            known = provider.list_names()  # may know more: models registered in this process
        if short not in known:
            raise UnknownNameError(
                "model",
                name,
                (f"{prefix}/{n}" for n in known),
                f"`ssl models list '{prefix}/*'` shows them all.",
            )
        return provider, short

    def build_backbone(self, name: str, **model_args: Any) -> Backbone:
        provider, short = self.resolve_model(name)
        return provider.build(short, **model_args)


def listed_names(provider: BackboneProvider) -> list[str]:
    """A provider's names, without importing its library where it keeps them cached."""
    cached = provider.cached_names()
    return provider.list_names() if cached is None else cached


def match(names: Iterable[str], filter: str) -> list[str]:
    """Names matching an fnmatch pattern, case-insensitively; no wildcard means substring."""
    pattern = filter.lower()
    if pattern and not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*"
    return sorted(n for n in names if not pattern or fnmatch.fnmatch(n.lower(), pattern))


def build_registry(
    pm: pluggy.PluginManager,
    plugins: dict[str, PluginInfo],
    mark_broken: Callable[[PluginInfo, str], None],
) -> Registry:
    """Call each plugin's register hooks on its own, so a failure names the plugin."""
    tables: dict[str, dict[str, tuple[str, Any]]] = {hook: {} for hook in HOOK_KINDS}
    for hook_name, kind in HOOK_KINDS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            plugin = impl.plugin_name
            info = plugins.get(plugin)
            if info is not None and info.status == "broken":
                continue
            collected: list[tuple[str, Any]] = []

            def register(obj: Any, _kind: str = kind, _into: list = collected) -> None:
                _into.append(_check(_kind, obj))

            try:
                impl.function(register=register)
            except Exception as exc:
                if info is not None:
                    mark_broken(info, f"{hook_name} failed: {type(exc).__name__}: {exc}")
                continue
            table = tables[hook_name]
            for name, obj in collected:
                if name in table:
                    other = table[name][0]
                    raise PluginError(
                        f"The {kind} name '{name}' is registered by two plugins: '{other}' and "
                        f"'{plugin}'. Uninstall one, or block one with "
                        f"SSL_CORE_BLOCKED_PLUGINS={plugin}."
                    )
                table[name] = (plugin, obj)
                if info is not None:
                    info.registers.setdefault(kind, []).append(name)
    # A plugin broken in a later hook must not keep what it registered in an earlier one.
    broken = {name for name, info in plugins.items() if info.status == "broken"}
    clean = {
        hook: {n: v for n, v in table.items() if v[0] not in broken}
        for hook, table in tables.items()
    }
    return Registry(
        methods=clean["ssl_register_methods"],
        transforms=clean["ssl_register_transforms"],
        backbones=clean["ssl_register_backbones"],
    )


def _check(kind: str, obj: Any) -> tuple[str, Any]:
    """Validate a registered object; a bad one makes its plugin broken (raised into the hook)."""
    if kind == "backbone provider":
        if not isinstance(obj, BackboneProvider) or not obj.prefix:
            raise TypeError(f"expected a BackboneProvider with a prefix, got {obj!r}")
        return obj.prefix, obj
    base = Method if kind == "method" else Transform
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise TypeError(f"expected a subclass of {base.__name__}, got {obj!r}")
    name = getattr(obj, "name", "")
    if not name:
        raise TypeError(f"{obj.__name__} has no name")
    args_model = getattr(obj, "args_model", None)
    if not (isinstance(args_model, type) and issubclass(args_model, BaseModel)):
        raise TypeError(f"{kind} '{name}' has no pydantic args_model")
    problems = field_problems(args_model)
    if problems:
        raise TypeError(f"{kind} '{name}' args schema: {'; '.join(problems)}")
    if kind == "method" and not getattr(obj, "transform", ""):
        raise TypeError(f"method '{name}' names no transform")
    return name, obj
