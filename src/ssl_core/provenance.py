"""Which installed code a run used: ssl-core's version and, for its method, transform and
backbone provider, the plugin (entry point) that registered each and the distribution and
version it came from. config.json and summary.json record it; a resume checks it, so that a
plugin uninstalled since names the distribution to install, and a changed version is said.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from ssl_core.errors import ConfigError
from ssl_core.plugins import ALLOWED_ENV, host
from ssl_core.registry import PROVIDER

# What a run records, by the registry table each is looked up in.
COMPONENTS = {"method": "methods", "transform": "transforms", "backbone_provider": "backbones"}
# The registry's name for each kind (its ``conflicts`` are keyed by these).
REGISTRY_KINDS = {"method": "method", "transform": "transform", "backbone_provider": PROVIDER}


class ProvenanceWarning(UserWarning):
    """A resumed run goes on with another version of ssl-core or of one of its plugins."""


def ssl_core_version() -> str:
    from ssl_core import __version__

    return __version__


def record(method: str, transform: str, model: str | None) -> dict[str, Any]:
    """The provenance of a run of ``method`` with ``transform`` on the registry model
    ``model`` (None for the user's own nn.Module, which no plugin provides)."""
    names = {
        "method": method,
        "transform": transform,
        "backbone_provider": None if model is None else model.partition("/")[0],
    }
    recorded: dict[str, Any] = {"ssl_core": ssl_core_version()}
    for kind, name in names.items():
        recorded[kind] = None if name is None else _provider(kind, name)
    return recorded


def _provider(kind: str, name: str) -> dict[str, Any]:
    plugin, _ = getattr(host.registry, COMPONENTS[kind])[name]
    info = host.plugins.get(plugin)
    return {
        "name": name,
        "plugin": plugin,
        # A plugin registered in-process (not from an entry point) has no distribution.
        "distribution": (info.distribution if info else "") or None,
        "version": (info.version if info else "") or None,
    }


def saved(out: Path) -> dict[str, Any] | None:
    """The provenance in ``out``'s config.json, or None where there is none (a run of an
    older version, or no readable config: the resume check then says what is wrong)."""
    try:
        config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    recorded = config.get("provenance") if isinstance(config, dict) else None
    return recorded if isinstance(recorded, dict) else None


def check_resume(out: Path) -> None:
    """Before a resume looks anything up: raise ConfigError naming the distribution (and
    version) to install for each recorded plugin that is gone; warn of changed versions."""
    recorded = saved(out)
    if recorded is None:
        return
    missing, changed = [], []
    for kind, table in COMPONENTS.items():
        entry = recorded.get(kind)
        if not isinstance(entry, dict) or not entry.get("name"):
            continue
        current = getattr(host.registry, table).get(entry["name"])
        if entry["name"] in host.registry.conflicts.get(REGISTRY_KINDS[kind], {}):
            continue  # installed twice: the lookup that follows names both and what to do
        if current is None:
            missing.append(_missing(kind, entry))
            continue
        now = _provider(kind, entry["name"])
        before = _spelt(entry)
        if (now["distribution"], now["version"]) != (
            entry.get("distribution"),
            entry.get("version"),
        ):
            changed.append(
                f"{_what(kind, entry)}: {before} when the run started, {_spelt(now)} now"
            )
    if missing:
        raise ConfigError(
            f"Cannot resume the run in '{out}': "
            + " ".join(missing)
            + " Then resume again; `ssl plugins` shows what is installed."
        )
    if recorded.get("ssl_core") not in (None, ssl_core_version()):
        changed.insert(
            0, f"ssl-core: {recorded['ssl_core']} when the run started, {ssl_core_version()} now"
        )
    if changed:
        warnings.warn(
            "Resuming with other versions than the run started with ("
            + "; ".join(changed)
            + "). The run goes on; its results may differ from an uninterrupted run's.",
            ProvenanceWarning,
            stacklevel=3,
        )


def _missing(kind: str, entry: dict[str, Any]) -> str:
    """What provided a recorded name that is not registered now, and what to do about it."""
    distribution, version = entry.get("distribution"), entry.get("version")
    plugin = entry.get("plugin")
    what = _what(kind, entry)
    if not distribution:
        return f"its {what} (plugin '{plugin}', registered in-process) is not registered now."
    spelt = f"{distribution} {version}" if version else distribution
    origin = f"its {what} came from the distribution {spelt} (plugin '{plugin}')"
    info = host.plugins.get(plugin) if isinstance(plugin, str) else None
    if info is not None and info.status == "blocked":
        return (
            f"{origin}, which is installed but blocked: remove '{plugin}' from "
            "SSL_CORE_BLOCKED_PLUGINS."
        )
    if info is not None and info.status == "not allowed":
        return f"{origin}, which is installed but not in {ALLOWED_ENV}: add '{plugin}' to it."
    if info is not None and info.status == "broken":
        return f"{origin}, which is installed but failed to load: {info.error}."
    pin = f"{distribution}=={version}" if version else distribution
    now = (
        "is not installed now"
        if info is None
        else f"no longer registers it ({info.distribution} {info.version} is installed)"
    )
    return f"{origin}, which {now}: install it with `pip install '{pin}'`."


def _what(kind: str, entry: dict[str, Any]) -> str:
    return f"{kind.replace('_', ' ')} '{entry['name']}'"


def _spelt(entry: dict[str, Any]) -> str:
    distribution = entry.get("distribution") or f"plugin '{entry.get('plugin')}'"
    return f"{distribution} {entry.get('version') or '(no version)'}"
