"""Developer tasks: `nox -s tests`, `lint`, `typecheck`, `docs`, `demo`, `bench`.

Sessions use pip-based venvs and install the pinned torch pair first; on this project's
machines those wheels come from the local disk instead of a multi-GB download.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_venv = "yes"

TORCH = ("torch==2.14.1", "torchvision==0.29.1")
PLUGINS = ("plugins/simclr", "plugins/byol", "plugins/dino")
TEMPLATE = "examples/plugin-template"  # installed like a third party's plugin, and tested


def install_project(session: nox.Session, *extras: str, template: bool = False) -> None:
    session.install(*TORCH)
    project = f".[{','.join(extras)}]" if extras else "."
    plugins = (*PLUGINS, TEMPLATE) if template else PLUGINS
    session.install("-e", project, *(arg for plugin in plugins for arg in ("-e", plugin)))


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite (CPU only, a few minutes on 2 cores): tests/, each plugin's
    tests beside it (plugins/*/tests) and the plugin template's (pyproject's testpaths)."""
    install_project(session, "test", "tensorboard", "plots", template=True)
    session.install("setuptools")  # the tests pip-install small plugin distributions
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "src", "plugins", "tests", "noxfile.py", "benchmarks", "examples")


@nox.session
def typecheck(session: nox.Session) -> None:
    install_project(session, template=True)
    session.install("mypy")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """Regenerate the pages made from the code (`ssl docs`), then build the site with
    warnings as errors into docs/_build/html (open docs/_build/html/index.html)."""
    install_project(session, "docs")
    session.run("ssl", "docs", "--out", "docs")
    # -W: a broken link, include or docstring fails the build instead of a warning
    build = ("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")
    session.run(*build, *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """Pretrain SimCLR on a small built-in example set and print a summary."""
    install_project(session, "plots")
    session.run("python", "-m", "ssl_core.demo", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Throughput benchmarks; writes benchmarks/RESULTS.md."""
    install_project(session)
    session.run("python", "benchmarks/bench.py", *session.posargs)
