"""``ssl`` run as a user runs it, in a process of its own, and signalled mid-run."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import time
from pathlib import Path

from ssl_core.plugins import ALLOWED_ENV, ENTRY_POINT_GROUP

SSL_SCRIPT = Path(sys.executable).with_name("ssl")
WIDE = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}  # help and tables unwrapped


def ssl_command() -> list[str]:
    """The installed ``ssl`` console script, or ``python -m ssl_core`` where there is none
    beside this Python (an interpreter that is not a virtual environment's)."""
    return [str(SSL_SCRIPT)] if SSL_SCRIPT.exists() else [sys.executable, "-m", "ssl_core"]


def child_environment(env: dict | None = None, extra_path: list[Path] | None = None) -> dict:
    """This process's environment for a child, wide and uncoloured; ``extra_path`` first on
    its PYTHONPATH (a plugin installed into a directory of its own), and that plugin's entry
    points allowed where an allow-list (``SSL_CORE_PLUGINS``) would leave them out, unless
    ``env`` sets the list itself."""
    environment = {**os.environ, **WIDE, **(env or {})}
    if extra_path:
        if ALLOWED_ENV not in (env or {}):
            environment = allowing(environment, extra_path)
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(p) for p in extra_path] + [environment.get("PYTHONPATH", "")]
        )
    return environment


def entry_point_names(site: Path) -> list[str]:
    """The ssl-core entry points of the distributions installed in ``site``."""
    return sorted(
        {
            ep.name
            for dist in importlib.metadata.distributions(path=[str(site)])
            for ep in dist.entry_points
            if ep.group == ENTRY_POINT_GROUP
        }
    )


def allowing(environment: dict, sites: list[Path]) -> dict:
    """``environment`` with the entry points installed in ``sites`` allowed too."""
    allowed = environment.get(ALLOWED_ENV)
    if allowed:  # unset: every plugin loads already
        names = [n for site in sites for n in entry_point_names(site)]
        environment = {**environment, ALLOWED_ENV: ",".join([allowed, *names])}
    return environment


def run_ssl(
    *args: str,
    extra_path: list[Path] | None = None,
    env: dict | None = None,
    timeout: float = 300,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess:
    """Run ``ssl ARGS`` and wait for it; its output is captured as text."""
    return subprocess.run(
        [*ssl_command(), *args],
        capture_output=True,
        text=True,
        env=child_environment(env, extra_path),
        timeout=timeout,
        cwd=cwd,
    )


def signal_during_run(
    args: list[str],
    metrics: Path,
    after_lines: int,
    signals: tuple[int, ...],
    group: bool = False,
    between: float = 0.0,
) -> subprocess.CompletedProcess:
    """Start ``ssl ARGS``; once ``metrics`` holds ``after_lines`` steps send it ``signals``
    (to its whole process group with ``group``, as a terminal's Ctrl-C or a machine
    failure would reach every process), ``between`` seconds apart, and wait for it to end."""
    process = subprocess.Popen(
        [*ssl_command(), *args],
        env=child_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= after_lines:
            break
        time.sleep(0.02)
    if process.poll() is not None:
        stdout, stderr = process.communicate()
        raise AssertionError(
            f"the run ended (exit code {process.returncode}) before {after_lines} steps were "
            f"logged in {metrics}, so it could not be signalled:\n{stderr[-3000:]}"
        )
    for i, signum in enumerate(signals):
        if i:
            time.sleep(between)
        if group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=240)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def sigkill_during_run(args: list[str], metrics: Path, after_lines: int) -> None:
    """SIGKILL ``ssl ARGS`` and every process it started after ``after_lines`` steps."""
    import signal

    signal_during_run(args, metrics, after_lines, (signal.SIGKILL,), group=True)


def key_value_args(**options: object) -> list[str]:
    """``ssl pretrain``'s ``key=value`` arguments for ``pretrain()``'s keywords: a dict
    becomes dotted keys (``method_args={"a": {"b": 1}}`` gives ``method_args.a.b=1``)."""
    import json

    def pairs(prefix: str, value: object) -> list[str]:
        if isinstance(value, dict):
            return [
                item for key, inner in value.items() for item in pairs(f"{prefix}.{key}", inner)
            ]
        if isinstance(value, (str, Path)):
            return [f"{prefix}={value}"]
        if isinstance(value, tuple):
            value = list(value)
        return [f"{prefix}={json.dumps(value)}"]

    return [item for key, value in options.items() for item in pairs(key, value)]
