"""Find image files: a directory scanned recursively (symlinks followed), or a list."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ssl_core.errors import ConfigError

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}
)


def scan_images(data: str | Path | Sequence[str | Path]) -> list[Path]:
    """Every image file under ``data``, sorted, each once. Missing paths and an empty result
    are clear errors."""
    sources = [data] if isinstance(data, (str, Path)) else list(data)
    if not sources:
        raise ConfigError("data is an empty list: give a directory of images or image files.")
    found: dict[str, Path] = {}
    for source in sources:
        path = Path(source).expanduser()
        if not path.exists():
            raise ConfigError(f"data path '{shown_path(source)}' does not exist.")
        if not path.is_dir():  # a file named on its own: a FIFO or device is skipped later
            found.setdefault(os.path.realpath(path), path)
            continue
        for file in _walk(path):
            found.setdefault(os.path.realpath(file), file)
    if not found:
        raise ConfigError(
            f"No images found in {', '.join(shown_path(s) for s in sources)} (looked for "
            f"{', '.join(sorted(IMAGE_EXTENSIONS))}, recursively)."
        )
    return sorted(found.values())


def shown_path(path: str | Path) -> str:
    """``path`` as text that any console or UTF-8 log can show. A file name may be any bytes;
    those that are not UTF-8 (which Python keeps as surrogates) become ``\\xff`` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _walk(root: Path) -> list[Path]:
    files = []
    seen_dirs: set[str] = set()
    for directory, subdirs, names in os.walk(root, followlinks=True):
        real = os.path.realpath(directory)
        if real in seen_dirs:  # a symlink loop, or two links to one folder
            subdirs[:] = []
            continue
        seen_dirs.add(real)
        subdirs.sort()
        for name in names:
            if Path(name).suffix.lower() in IMAGE_EXTENSIONS and not name.startswith("."):
                files.append(Path(directory) / name)
    return files
