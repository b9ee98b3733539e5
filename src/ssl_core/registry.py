"""Name -> thing lookups for methods, transforms and backbones, built once from the hooks."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ssl_core.args import field_problems, validate_args
from ssl_core.backbones.provider import BackboneProvider
from ssl_core.errors import NameConflictError, UnknownNameError
from ssl_core.hookspecs import HOOK_KINDS
from ssl_core.method import Method
from ssl_core.plugins import ALLOWED_ENV, BLOCKED_ENV, PluginInfo, add_conflict
from ssl_core.transforms.base import Transform

if TYPE_CHECKING:
    import pluggy

    from ssl_core.backbones.backbone import Backbone

PROVIDER = HOOK_KINDS["ssl_register_backbones"]


@dataclass(frozen=True)
class Registry:
    """An immutable snapshot: name -> (plugin name, registered object).

    A name two plugins register is in no table but in ``conflicts`` (kind -> name -> the
    plugins); using it raises NameConflictError, every other name works. ``plugins`` is the
    host's PluginInfo per plugin name, for provenance and for saying why a name is missing.
    """

    methods: dict[str, tuple[str, type[Method]]]
    transforms: dict[str, tuple[str, type[Transform]]]
    backbones: dict[str, tuple[str, BackboneProvider]]
    conflicts: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    plugins: Mapping[str, PluginInfo] = field(default_factory=dict)

    def get_method(self, name: str) -> type[Method]:
        return self._lookup("method", self.methods, name, "`ssl plugins` shows what is installed.")

    def get_transform(self, name: str) -> type[Transform]:
        return self._lookup("transform", self.transforms, name)

    def list_methods(self, filter: str = "") -> list[str]:
        return match([*self.methods, *self.conflicts.get("method", {})], filter)

    def list_transforms(self, filter: str = "") -> list[str]:
        return match([*self.transforms, *self.conflicts.get("transform", {})], filter)

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
        if short and prefix in self.conflicts.get(PROVIDER, {}):
            self._lookup(PROVIDER, self.backbones, prefix)  # raises, naming both plugins
        if not short or prefix not in self.backbones:
            raise UnknownNameError(
                "model",
                name,
                (f"{p}/<name>" for p in self.backbones),
                "Model names look like 'torchvision/resnet18' or 'timm/resnet18'; "
                "`ssl models list` shows them all.",
                cause=self._why_missing(PROVIDER, prefix) if short else "",
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

    def _lookup(
        self, kind: str, table: Mapping[str, tuple[str, Any]], name: str, hint: str = ""
    ) -> Any:
        if name in table:
            return table[name][1]
        owners = self.conflicts.get(kind, {}).get(name)
        if owners:
            raise NameConflictError(self._conflict_message(kind, name, owners))
        known = [*table, *self.conflicts.get(kind, {})]
        hint = " ".join(h for h in (self._maybe_from(name), hint) if h)
        raise UnknownNameError(kind, name, known, hint, cause=self._why_missing(kind, name))

    def _origin(self, plugin: str) -> str:
        info = self.plugins.get(plugin)
        return info.origin if info is not None else f"'{plugin}'"

    def _conflict_message(self, kind: str, name: str, owners: list[str]) -> str:
        shown = " and ".join(self._origin(p) for p in owners)
        blocks = " or ".join(f"{BLOCKED_ENV}={self._block_key(p)}" for p in owners)
        return (
            f"The {kind} '{name}' is registered by {len(owners)} plugins: {shown}, so it "
            f"cannot be used. Uninstall one, or block one with {blocks}. Every other name "
            "works; `ssl plugins` shows the conflict."
        )

    def _block_key(self, plugin: str) -> str:
        """What SSL_CORE_BLOCKED_PLUGINS takes to block this plugin alone."""
        info = self.plugins.get(plugin)
        if info is None or not info.distribution:
            return plugin
        # An entry-point name two distributions share blocks both: use the distribution's.
        return info.distribution if " (" in info.name else info.name

    def _why_missing(self, kind: str, name: str) -> str:
        """Why a name is unavailable when we know for sure: its plugin is broken."""
        for info in self.plugins.values():
            if info.status == "broken" and name in info.claims.get(kind, []):
                return (
                    f"plugin {info.origin}, which registers it, is broken: {info.error}. "
                    "`ssl plugins` shows every plugin's status."
                )
        for info in self.plugins.values():
            if info.status == "broken" and not info.claims and _named_after(info, name):
                return (
                    f"it probably comes from plugin {info.origin}, which is broken: "
                    f"{info.error}. `ssl plugins` shows every plugin's status."
                )
        return ""

    def _maybe_from(self, name: str) -> str:
        """Plugins that did not load and may have provided ``name``."""
        notes = []
        for info in self.plugins.values():
            if info.status == "broken" and not info.claims:
                notes.append(
                    f"Plugin {info.origin} failed to load and may provide it: {info.error}."
                )
            elif info.status == "blocked" and _named_after(info, name):
                notes.append(f"Plugin {info.origin} may provide it but is in {BLOCKED_ENV}.")
            elif info.status == "not allowed" and _named_after(info, name):
                notes.append(f"Plugin {info.origin} may provide it but is not in {ALLOWED_ENV}.")
        return " ".join(notes)


def _named_after(info: PluginInfo, name: str) -> bool:
    """A plugin whose entry point or distribution is named after ``name`` (ssl-simclr)."""
    entry_point = info.name.split(" (")[0]
    return name in (entry_point, info.distribution) or info.distribution.endswith(f"-{name}")


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
    """Call each plugin's register hooks on its own, so a failure names the plugin; then
    check what the methods refer to, and set aside names registered twice."""
    claims: list[tuple[str, str, str, Any]] = []  # (kind, name, plugin, object)
    for hook_name, kind in HOOK_KINDS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            plugin = impl.plugin_name
            info = plugins.setdefault(plugin, PluginInfo(name=plugin, module=repr(impl.plugin)))
            if info.status == "broken":
                continue
            collected: list[tuple[str, Any]] = []

            def register(
                obj: Any, _kind: str = kind, _into: list = collected, _info: PluginInfo = info
            ) -> None:
                claimed = _claimed_name(_kind, obj)
                if claimed:  # even when the check below fails: a lookup can then say why
                    _info.claims.setdefault(_kind, []).append(claimed)
                _into.append(_check(_kind, obj))

            try:
                impl.function(register=register)
                names = [name for name, _ in collected]
                twice = sorted({name for name in names if names.count(name) > 1})
                if twice:
                    raise ValueError(f"registers the {kind} {', '.join(twice)} more than once")
            except Exception as exc:
                mark_broken(info, f"{hook_name} failed: {type(exc).__name__}: {exc}")
                continue
            claims.extend((kind, name, plugin, obj) for name, obj in collected)

    _break_methods_with_bad_transforms(claims, plugins, mark_broken)
    # A plugin broken in a later hook or check must not keep what it registered earlier.
    owners: dict[tuple[str, str], list[tuple[str, Any]]] = {}
    for kind, name, plugin, obj in claims:
        if plugins[plugin].status != "broken":
            owners.setdefault((kind, name), []).append((plugin, obj))
    tables: dict[str, dict[str, tuple[str, Any]]] = {kind: {} for kind in HOOK_KINDS.values()}
    conflicts: dict[str, dict[str, list[str]]] = {kind: {} for kind in HOOK_KINDS.values()}
    for (kind, name), registrations in owners.items():
        for plugin, _ in registrations:
            plugins[plugin].registers.setdefault(kind, []).append(name)
        if len(registrations) == 1:
            tables[kind][name] = registrations[0]
            continue
        conflicts[kind][name] = [plugin for plugin, _ in registrations]
        for plugin, _ in registrations:
            others = ", ".join(plugins[p].origin for p, _ in registrations if p != plugin)
            add_conflict(plugins[plugin], f"{kind} '{name}' is also registered by {others}")
    return Registry(
        methods=tables["method"],
        transforms=tables["transform"],
        backbones=tables[PROVIDER],
        conflicts=conflicts,
        plugins=plugins,
    )


def _break_methods_with_bad_transforms(
    claims: list[tuple[str, str, str, Any]],
    plugins: dict[str, PluginInfo],
    mark_broken: Callable[[PluginInfo, str], None],
) -> None:
    """A method must name a registered transform, and its transform_defaults must be valid
    arguments of it: the plugin's mistake, reported as such rather than to the user who
    runs the method. Transforms may come from other plugins, and a plugin broken here may
    take a transform others use with it, so this repeats until nothing more breaks."""
    while True:
        live = [c for c in claims if plugins[c[2]].status != "broken"]
        transforms: dict[str, list[Any]] = {}
        for kind, name, _, obj in live:
            if kind == "transform":
                transforms.setdefault(name, []).append(obj)
        problems: dict[str, list[str]] = {}
        for kind, name, plugin, obj in live:
            if kind == "method":
                problem = _transform_problem(name, obj, transforms, plugins)
                if problem:
                    problems.setdefault(plugin, []).append(problem)
        if not problems:
            return
        for plugin, sentences in problems.items():
            mark_broken(plugins[plugin], "; ".join(s.rstrip(".") for s in sentences))


def _transform_problem(
    name: str, method: type[Method], transforms: dict[str, list[Any]], plugins: Any
) -> str:
    candidates = transforms.get(method.transform, [])
    if len(candidates) > 1:
        return ""  # ambiguous: not this plugin's fault; using the method says so
    if not candidates:
        problem = f"method '{name}' uses transform '{method.transform}', which no plugin registers"
        for info in plugins.values():
            if info.status in ("broken", "blocked") and method.transform in info.claims.get(
                "transform", []
            ):
                problem += f" (plugin {info.origin}, which registers it, is {info.status})"
        return problem
    try:
        validate_args(candidates[0].args_model, method.transform_defaults, "transform_defaults")
    except Exception as exc:
        return (
            f"method '{name}' has transform_defaults that transform '{method.transform}' "
            f"rejects: {exc}"
        )
    return ""


def _claimed_name(kind: str, obj: Any) -> str:
    name = getattr(obj, "prefix" if kind == PROVIDER else "name", "")
    return name if isinstance(name, str) else ""


def _check(kind: str, obj: Any) -> tuple[str, Any]:
    """Validate a registered object; a bad one makes its plugin broken (raised into the hook)."""
    if kind == PROVIDER:
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
