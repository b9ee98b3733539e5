"""One lazily built pluggy PluginManager; entry points of the group ``ssl_core`` load once.

A plugin that fails to import or register is reported by name in a warning and skipped; the
others keep working. ``SSL_CORE_BLOCKED_PLUGINS=a,b`` blocks plugins by entry-point name
before they are imported.
"""

from __future__ import annotations

import importlib.metadata
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import pluggy

from ssl_core import hookspecs
from ssl_core.hookspecs import PROJECT

ENTRY_POINT_GROUP = "ssl_core"
BLOCKED_ENV = "SSL_CORE_BLOCKED_PLUGINS"


class PluginWarning(UserWarning):
    """A plugin was skipped because it is broken."""


@dataclass
class PluginInfo:
    """What ``ssl plugins`` shows about one plugin."""

    name: str
    module: str
    distribution: str = ""
    version: str = ""
    status: str = "loaded"  # loaded | blocked | broken
    error: str = ""
    registers: dict[str, list[str]] = field(default_factory=dict)


def blocked_names() -> set[str]:
    raw = os.environ.get(BLOCKED_ENV, "")
    return {name.strip() for name in raw.split(",") if name.strip()}


class PluginHost:
    """Owns the plugin manager and the registry built from it; both are made on first use."""

    def __init__(self) -> None:
        self._pm: pluggy.PluginManager | None = None
        self._registry: Any = None
        self.plugins: dict[str, PluginInfo] = {}

    @property
    def pm(self) -> pluggy.PluginManager:
        if self._pm is None:
            pm = pluggy.PluginManager(PROJECT)
            pm.add_hookspecs(hookspecs)
            self._pm = pm
            self._load_entry_points()
        return self._pm

    def _load_entry_points(self) -> None:
        assert self._pm is not None
        blocked = blocked_names()
        for ep in sorted(
            importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name
        ):
            dist = getattr(ep, "dist", None)
            info = PluginInfo(
                name=ep.name,
                module=ep.value,
                distribution=dist.metadata["Name"] if dist else "",
                version=dist.version if dist else "",
            )
            if ep.name in self.plugins:
                first = self.plugins[ep.name]
                info.status = "broken"
                info.error = (
                    f"entry point name '{ep.name}' is also used by "
                    f"{first.distribution or first.module}; only the first is loaded"
                )
                warnings.warn(_broken_message(info), PluginWarning, stacklevel=2)
                self.plugins[f"{ep.name} ({info.distribution})"] = info
                continue
            self.plugins[ep.name] = info
            if ep.name in blocked:
                info.status = "blocked"
                self._pm.set_blocked(ep.name)
                continue
            try:
                module = ep.load()
                self._pm.register(module, name=ep.name)
            except Exception as exc:  # a third party's bug must not take the others down
                self._mark_broken(info, f"import failed: {type(exc).__name__}: {exc}")

    def _mark_broken(self, info: PluginInfo, error: str) -> None:
        info.status = "broken"
        info.error = error
        info.registers = {}
        warnings.warn(_broken_message(info), PluginWarning, stacklevel=3)

    def register(self, plugin: Any, name: str) -> None:
        """Register a plugin object (a module or any object with hookimpls) directly."""
        self.pm.register(plugin, name=name)
        self.plugins[name] = PluginInfo(name=name, module=getattr(plugin, "__name__", repr(plugin)))
        self._registry = None

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self.plugins.pop(name, None)
        self._registry = None

    @property
    def registry(self) -> Any:
        if self._registry is None:
            from ssl_core.registry import build_registry

            pm = self.pm
            self._registry = build_registry(pm, self.plugins, self._mark_broken)
        return self._registry

    def reset(self) -> None:
        """Forget everything; the next use loads entry points again (for tests)."""
        self._pm = None
        self._registry = None
        self.plugins = {}


def _broken_message(info: PluginInfo) -> str:
    origin = f" from {info.distribution} {info.version}".rstrip() if info.distribution else ""
    return f"ssl-core plugin '{info.name}'{origin} is skipped: {info.error}"


host = PluginHost()
