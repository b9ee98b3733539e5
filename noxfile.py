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


def install_project(session: nox.Session, *extras: str) -> None:
    session.install(*TORCH)
    project = f".[{','.join(extras)}]" if extras else "."
    plugins = ("plugins/simclr", "plugins/byol", "plugins/dino")
    session.install("-e", project, *(arg for plugin in plugins for arg in ("-e", plugin)))


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite (CPU only, a few minutes on 2 cores)."""
    install_project(session, "test", "tensorboard", "plots")
    session.install("setuptools")  # the tests pip-install small plugin distributions
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "src", "plugins", "tests", "noxfile.py", "benchmarks")


@nox.session
def typecheck(session: nox.Session) -> None:
    install_project(session)
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
