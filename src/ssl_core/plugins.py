"""One lazily built pluggy PluginManager; entry points of the group ``ssl_core`` load once.

A plugin that fails to import or register is reported by name in a warning and skipped; the
others keep working. ``SSL_CORE_BLOCKED_PLUGINS=a,b`` blocks plugins (by entry-point or
distribution name) before they are imported; ``SSL_CORE_PLUGINS=a,b`` loads only the entry
points named and skips the others unimported.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import inspect
import os
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pluggy

from ssl_core import hookspecs
from ssl_core.hookspecs import HOOK_KINDS, PROJECT

ENTRY_POINT_GROUP = "ssl_core"
BLOCKED_ENV = "SSL_CORE_BLOCKED_PLUGINS"
ALLOWED_ENV = "SSL_CORE_PLUGINS"


class PluginWarning(UserWarning):
    """A plugin was skipped because it is broken."""


@dataclass
class PluginInfo:
    """What ``ssl plugins`` shows about one plugin."""

    name: str
    module: str
    distribution: str = ""
    version: str = ""
    status: str = "loaded"  # loaded | conflict | blocked | not allowed | broken
    error: str = ""
    registers: dict[str, list[str]] = field(default_factory=dict)
    claims: dict[str, list[str]] = field(default_factory=dict)
    """What it registered or tried to, kept when it is broken: a lookup of one of these
    names can then say which plugin failed and why."""
    conflicts: list[str] = field(default_factory=list)
    """One sentence per name it shares with another plugin; those names are unusable."""

    @property
    def origin(self) -> str:
        """'name' (distribution version), for messages."""
        where = f"{self.distribution} {self.version}".strip()
        return f"'{self.name}' ({where})" if where else f"'{self.name}'"


def _names(raw: str) -> set[str]:
    return {name.strip() for name in raw.split(",") if name.strip()}


def blocked_names() -> set[str]:
    return _names(os.environ.get(BLOCKED_ENV, ""))


def allowed_names() -> set[str] | None:
    """The entry points ``SSL_CORE_PLUGINS`` allows, or None (unset or empty): all."""
    return _names(os.environ.get(ALLOWED_ENV, "")) or None


class PluginHost:
    """Owns the plugin manager and the registry built from it; both are made on first use.

    Tests that must see only some installed plugins (say, a project's own test suite beside
    a user's other plugins) restrict the entry points that load::

        with host.allow_only({"torchvision", "timm", "simclr"}):
            assert ssl_core.list_methods() == ["simclr"]

    or set ``SSL_CORE_PLUGINS=torchvision,timm,simclr``, which reaches ``ssl`` processes too
    (``allow_only`` wins over the variable). The others show in ``ssl plugins`` as "not
    allowed" and are never imported. Plugin objects given to ``register`` are always used.
    """

    def __init__(self) -> None:
        self._pm: pluggy.PluginManager | None = None
        self._registry: Any = None
        self._allowed: set[str] | None = None
        self.plugins: dict[str, PluginInfo] = {}
        self._at_load: dict[str, tuple[str, str, list[str]]] = {}

    @property
    def pm(self) -> pluggy.PluginManager:
        if self._pm is None:
            pm = pluggy.PluginManager(PROJECT)
            pm.add_hookspecs(hookspecs)
            self._pm = pm
            self._load_entry_points()
            for info in self.plugins.values():
                self._remember(info)
        return self._pm

    def _remember(self, info: PluginInfo) -> None:
        """Keep what loading found, so that each new registry starts from it."""
        self._at_load[info.name] = (info.status, info.error, list(info.conflicts))

    @contextmanager
    def _restoring(self, previous: set[str] | None) -> Iterator[None]:
        try:
            yield
        finally:
            self._allowed = previous
            self.reset()

    def allow_only(self, names: Iterable[str] | None) -> Any:
        """Load only the entry points named (None: every one), from the next use on.

        Usable as a statement or as a context manager that restores the previous choice."""
        previous = self._allowed
        self._allowed = None if names is None else set(names)
        self.reset()
        return self._restoring(previous)

    def _allowed_names(self) -> set[str] | None:
        return self._allowed if self._allowed is not None else allowed_names()

    def _load_entry_points(self) -> None:
        assert self._pm is not None
        blocked = blocked_names()
        allowed = self._allowed_names()
        entry_points = []
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            info = PluginInfo(
                name=ep.name,
                module=ep.value,
                distribution=dist.metadata["Name"] if dist else "",
                version=dist.version if dist else "",
            )
            entry_points.append((ep, info))
        entry_points.sort(key=lambda pair: (pair[0].name, pair[1].distribution))
        by_name: dict[str, list[PluginInfo]] = {}
        for ep, info in entry_points:
            by_name.setdefault(ep.name, []).append(info)
        for ep, info in entry_points:
            if len(by_name[ep.name]) > 1:
                # Two distributions chose one entry-point name: keep both, each named by both.
                info.name = f"{ep.name} ({info.distribution})"
            self.plugins[info.name] = info
            if ep.name in blocked or info.distribution in blocked:
                info.status = "blocked"
                self._pm.set_blocked(info.name)
                continue
            if allowed is not None and ep.name not in allowed:
                info.status = "not allowed"
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a third party's bug must not take the others down
                self._mark_broken(info, f"import failed: {type(exc).__name__}: {exc}")
                continue
            self._register_checked(module, info)
        for name, infos in by_name.items():
            used = [i for i in infos if i.status not in ("blocked", "not allowed")]
            if len(used) > 1:
                dists = " and ".join(i.distribution or i.module for i in used)
                for info in used:
                    add_conflict(
                        info,
                        f"entry point name '{name}' is used by {dists}; block one with "
                        f"{BLOCKED_ENV}=<distribution>",
                    )

    def _register_checked(self, plugin: Any, info: PluginInfo) -> None:
        """Register ``plugin``; a hook pluggy does not know, or one it would ignore, breaks it."""
        assert self._pm is not None
        problems = hook_name_problems(self._pm, plugin)
        if problems:
            self._mark_broken(info, "; ".join(problems))
            return
        try:
            self._pm.register(plugin, name=info.name)
        except Exception as exc:  # pluggy's checks: a hook's arguments, a second registration
            self._mark_broken(info, f"hooks rejected: {type(exc).__name__}: {exc}")

    def _mark_broken(self, info: PluginInfo, error: str) -> None:
        info.status = "broken"
        info.error = error
        info.registers = {}
        warnings.warn(_broken_message(info), PluginWarning, stacklevel=3)

    def register(self, plugin: Any, name: str) -> None:
        """Register a plugin object (a module or any object with hookimpls) directly."""
        self.pm  # noqa: B018  # entry points first, as on any first use
        info = PluginInfo(name=name, module=getattr(plugin, "__name__", repr(plugin)))
        self.plugins[name] = info
        self._register_checked(plugin, info)
        self._remember(info)
        self._registry = None

    def unregister(self, name: str) -> None:
        if self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)
        self.plugins.pop(name, None)
        self._at_load.pop(name, None)
        self._registry = None

    @property
    def registry(self) -> Any:
        if self._registry is None:
            from ssl_core.registry import build_registry

            pm = self.pm
            for name, info in self.plugins.items():
                if name in self._at_load:
                    info.status, info.error, conflicts = self._at_load[name]
                    info.conflicts = list(conflicts)
                info.registers, info.claims = {}, {}
            self._registry = build_registry(pm, self.plugins, self._mark_broken)
        return self._registry

    def reset(self) -> None:
        """Forget everything; the next use loads entry points again (for tests)."""
        self._pm = None
        self._registry = None
        self.plugins = {}
        self._at_load = {}


def hook_name_problems(pm: pluggy.PluginManager, plugin: Any) -> list[str]:
    """A sentence per function that looks like a hook but would never be called: a name
    that is no hook (``ssl_register_method``), or a hook's name without ``@hookimpl``."""
    known = sorted(HOOK_KINDS)
    problems = []
    for name in sorted(dir(plugin)):
        marked = pm.parse_hookimpl_opts(plugin, name) is not None
        if not (marked or name.startswith("ssl_")):
            continue
        value = getattr(plugin, name, None)
        if not (marked or inspect.isfunction(value)):
            continue
        if name in known:
            if not marked:
                problems.append(
                    f"{name} is not decorated with @ssl_core.hookimpl, so it is never called"
                )
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        guess = f" (did you mean '{close[0]}'?)" if close else ""
        problems.append(
            f"{name} is not a hook of ssl-core{guess}; the hooks are {', '.join(known)}"
        )
    return problems


def add_conflict(info: PluginInfo, sentence: str) -> None:
    if info.status in ("loaded", "conflict"):
        info.status = "conflict"
    info.conflicts.append(sentence)


def _broken_message(info: PluginInfo) -> str:
    origin = f" from {info.distribution} {info.version}".rstrip() if info.distribution else ""
    return f"ssl-core plugin '{info.name}'{origin} is skipped: {info.error}"


host = PluginHost()
