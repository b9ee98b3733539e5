"""A library's model names without importing it: torch alone takes seconds and ~800 MB to load.

The names a library lists depend only on its installed version, so they are kept per version:
shipped in this package for the versions ssl-core is tested with (``model_names/``, compared
with the real libraries by a test), else cached in the user's cache directory the first time
the library is imported to list them.

``python -m ssl_core.backbones.name_lists`` rewrites the shipped lists for the installed
torchvision and timm.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

SHIPPED_DIR = Path(__file__).with_name("model_names")


def library_names(
    distribution: str,
    list_names: Callable[[], list[str]],
    module: str | None = None,
    shipped_dir: Path = SHIPPED_DIR,
) -> list[str]:
    """What ``list_names()`` (which imports ``module``) returns for the installed
    ``distribution``, read from a list for that version where one is shipped or cached."""
    if (module or distribution) in sys.modules:
        # Already paid for, and the live list includes models registered in this process.
        return list_names()
    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return list_names()  # raises the library's own ImportError
    file_name = list_file_name(distribution, version)
    for path in (shipped_dir / file_name, cache_dir() / file_name):
        names = read_names(path)
        if names:
            return names
    names = list_names()
    # An unwritable cache (read-only home) only costs the next listing its speed.
    with contextlib.suppress(OSError):
        write_names(cache_dir() / file_name, names, f"{distribution} {version}")
    return names


def list_file_name(distribution: str, version: str) -> str:
    # A local build tag (torch wheels' "+cu128") changes no model, so one list serves all.
    return f"{distribution}-{version.split('+')[0]}.txt"


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ssl-core/model-names``, by default under ``~/.cache``."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "ssl-core" / "model-names"


def read_names(path: Path) -> list[str]:
    """The names in a list file; none when it is missing or unreadable."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    return [line for line in lines if line and not line.startswith("#")]


def write_names(path: Path, names: list[str], source: str) -> None:
    """Write atomically, so a process listing at the same time never reads half a list."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, delete=False, suffix=".tmp"
    ) as file:
        file.write(f"# model names listed by {source}\n" + "".join(f"{n}\n" for n in names))
    os.chmod(file.name, 0o644)  # a temporary file is private; a list of names need not be
    os.replace(file.name, path)


def shipped_lists() -> dict[str, Callable[[], list[str]]]:
    """The libraries whose lists ship with ssl-core, each with the function (importing it)
    that gives its full list."""
    from ssl_core.backbones import timm_backbones, torchvision_backbones

    return {
        "torchvision": torchvision_backbones.all_model_names,
        "timm": timm_backbones.all_model_names,
    }


def write_shipped_lists(shipped_dir: Path = SHIPPED_DIR) -> list[Path]:
    """Replace each shipped list by the installed library's own (run after a version bump)."""
    written = []
    for distribution, list_names in shipped_lists().items():
        version = importlib.metadata.version(distribution)
        for old in shipped_dir.glob(f"{distribution}-*.txt"):
            old.unlink()
        path = shipped_dir / list_file_name(distribution, version)
        write_names(path, list_names(), f"{distribution} {version}")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_shipped_lists():
        print(f"wrote {written_path}")
