"""``check_plugin``: what a plugin must get right to be listed, documented and usable,
checked at once, with every problem named."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import pickle
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from ssl_core.plugins import ENTRY_POINT_GROUP, PluginWarning, host
from ssl_core.testing.processes import WIDE, child_environment, ssl_command

IMPORTS_TORCH = (
    "import importlib, sys; importlib.import_module(sys.argv[1]); print('torch' in sys.modules)"
)
REGISTER_AND_RUN = (
    "import importlib, sys; from ssl_core.plugins import host; from ssl_core.cli import main; "
    "host.register(importlib.import_module(sys.argv[1]), name=sys.argv[2]); "
    "sys.argv = ['ssl', *sys.argv[3:]]; main()"
)


def check_plugin(entry_point_or_module: str | ModuleType) -> None:
    """Check a plugin as ssl-core's users will meet it, and raise one AssertionError that
    lists every problem found. ``entry_point_or_module``: the plugin's entry-point name in
    the ``ssl_core`` group (``"simclr"``), its module's name, or the module.

    - its module imports, in a fresh process, without importing torch;
    - it loads and registers something, and is not reported broken;
    - every field of every registered method's and transform's schema has a default and a
      description;
    - each method's ``transform_defaults`` are valid arguments of its transform;
    - ``ssl pretrain --method NAME --help`` (in a real process too), ``ssl methods show
      NAME`` and the method's pages of ``ssl docs`` render, with its arguments in them;
    - each transform's ``ssl transforms show NAME`` renders; each backbone provider pickles.

    An installed plugin is checked as its entry point loads it, and its help is that of
    the ``ssl`` command; a module that is not installed (or is blocked) is registered here
    for the check, and in the new process by the same means."""
    module_name, entry_point = _locate(entry_point_or_module)
    problems = _import_problems(module_name)
    with _loaded(module_name, entry_point) as (info, plugin_name, error):
        if info is None:
            problems.append(f"{module_name} could not be loaded as a plugin: {error}")
        elif info.status != "loaded":
            problems.append(f"the plugin is {info.status}: {info.error}")
        else:
            registers = info.registers
            if not any(registers.values()):
                problems.append(
                    "it registers nothing: are its hooks named ssl_register_methods, "
                    "ssl_register_transforms or ssl_register_backbones, and decorated with "
                    "ssl_core.hookimpl?"
                )
            for name in registers.get("method", []):
                problems += _guarded(f"method '{name}'", _method_problems, name)
                problems += _guarded(
                    f"method '{name}'", _help_in_a_process, name, module_name, plugin_name
                )
            for name in registers.get("transform", []):
                problems += _guarded(f"transform '{name}'", _transform_problems, name)
            for prefix in registers.get("backbone provider", []):
                problems += _guarded(f"provider '{prefix}'", _provider_problems, prefix)
    if problems:
        raise AssertionError(
            f"check_plugin({module_name}) found {len(problems)} problem(s):\n"
            + "\n".join(f"- {p}" for p in problems)
        )


def _guarded(subject: str, check: Callable[..., list[str]], *args: Any) -> list[str]:
    """The problems ``check`` finds, each prefixed with ``subject``; an exception is one."""
    try:
        found = check(*args)
    except Exception as exc:
        found = [f"checking it raised {type(exc).__name__}: {exc}"]
    return [f"{subject}: {problem}" for problem in found]


def _locate(target: str | ModuleType) -> tuple[str, str | None]:
    """(module name, entry-point name or None) of what the caller named."""
    entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    if isinstance(target, ModuleType):
        module_name = target.__name__
    else:
        named = [ep for ep in entry_points if ep.name == target]
        if named:
            return named[0].value.partition(":")[0], named[0].name
        module_name = target
    by_module = [ep for ep in entry_points if ep.value.partition(":")[0] == module_name]
    return module_name, by_module[0].name if by_module else None


def _import_problems(module_name: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", IMPORTS_TORCH, module_name],
        capture_output=True,
        text=True,
        env=_child_env(),
        timeout=120,
    )
    if done.returncode != 0:
        return [f"importing {module_name} fails: {done.stderr.strip()[-2000:]}"]
    if done.stdout.strip().endswith("True"):
        return [
            f"importing {module_name} imports torch: import torch (and modules that do) "
            f"inside build() and the functions that need it, so that listing methods and "
            f"--help stay fast"
        ]
    return []


def _child_env() -> dict[str, str]:
    """This process's environment with its sys.path, so a child sees the same plugins."""
    path = os.pathsep.join(p for p in sys.path if p)
    return child_environment({"PYTHONPATH": path})


@contextmanager
def _loaded(module_name: str, entry_point: str | None) -> Iterator[Any]:
    """The plugin's PluginInfo and name: its entry point's when it is installed and loads,
    else the module registered here for the check. The plugins are reset after."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)  # check_plugin reports a broken plugin
        host.reset()
        name = entry_point
        try:
            host.pm  # noqa: B018  # loads the installed entry points
            if name is None or name not in host.plugins or host.plugins[name].status == "blocked":
                name = f"check:{module_name}"
                host.register(importlib.import_module(module_name), name=name)
            host.registry  # noqa: B018  # registration marks a plugin that fails as broken
        except Exception as exc:
            host.reset()
            yield None, None, f"{type(exc).__name__}: {exc}"
            return
        try:
            yield host.plugins.get(name), name, ""
        finally:
            host.reset()


def _schema_problems(args_model: Any) -> list[str]:
    from ssl_core.args import field_problems

    return field_problems(args_model)


def _render(*args: str) -> tuple[int, str]:
    """``ssl ARGS`` run in this process by click's test runner: exit code and output."""
    from typer.testing import CliRunner

    from ssl_core.cli import app

    result = CliRunner().invoke(app, list(args), env=WIDE)
    output = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        output += f"\n{type(result.exception).__name__}: {result.exception}"
    return result.exit_code, output


def _method_problems(name: str) -> list[str]:
    from ssl_core.config import method_transform_defaults
    from ssl_core.docs import method_pages

    problems = []
    method_cls = host.registry.get_method(name)
    problems += [f"args_model {p}" for p in _schema_problems(method_cls.args_model)]
    keys = list(method_cls.args_model.model_fields)
    try:
        method_transform_defaults(method_cls)
    except Exception as exc:
        problems.append(
            f"transform_defaults {method_cls.transform_defaults!r} are not valid arguments of "
            f"transform '{method_cls.transform}': {exc}"
        )
        return problems  # the help and pages show the transform's arguments: they fail too
    for command in (("pretrain", "--method", name, "--help"), ("methods", "show", name)):
        code, output = _render(*command)
        missing = [key for key in keys if key not in output]
        if code != 0 or missing or name not in output:
            problems.append(
                f"`ssl {' '.join(command)}` exits {code}"
                + (f" without the arguments {missing}" if missing else "")
                + f":\n{output[-1500:]}"
            )
    try:
        pages = method_pages(name)
    except Exception as exc:
        problems.append(f"its docs pages do not render: {type(exc).__name__}: {exc}")
    else:
        text = "\n".join(pages.values())
        missing = [key for key in keys if f"`{key}" not in text]
        if missing:
            problems.append(f"its docs pages lack the arguments {missing}")
    return problems


def _help_in_a_process(name: str, module_name: str, plugin_name: str) -> list[str]:
    """The help a user gets: from the ``ssl`` command when the plugin is installed; else
    from a process that registers the module as the check did, then runs ``ssl``."""
    arguments = ["pretrain", "--method", name, "--help"]
    if plugin_name.startswith("check:"):
        command = [sys.executable, "-c", REGISTER_AND_RUN, module_name, plugin_name, *arguments]
    else:
        command = [*ssl_command(), *arguments]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=_child_env(),
        timeout=120,
    )
    if done.returncode != 0 or f"{name}:" not in done.stdout:
        return [
            f"`ssl pretrain --method {name} --help` in a new process exits {done.returncode}:"
            f"\n{(done.stdout + done.stderr)[-1500:]}"
        ]
    return []


def _transform_problems(name: str) -> list[str]:
    transform_cls = host.registry.get_transform(name)
    problems = [f"args_model {p}" for p in _schema_problems(transform_cls.args_model)]
    code, output = _render("transforms", "show", name)
    if code != 0:
        problems.append(f"`ssl transforms show {name}` exits {code}:\n{output[-1500:]}")
    return problems


def _provider_problems(prefix: str) -> list[str]:
    provider = host.registry.backbones[prefix][1]
    try:
        pickle.loads(pickle.dumps(provider))
    except Exception as exc:
        return [
            f"does not pickle ({type(exc).__name__}: {exc}): it travels to every training "
            f"process; make it an instance of a module-level class"
        ]
    return []
