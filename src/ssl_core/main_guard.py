"""A script that calls ``pretrain(devices=N)`` without ``if __name__ == "__main__":``.

The training processes are started with the "spawn" method: each one imports the user's
script again, and an unguarded ``pretrain`` call would start training (and more processes)
inside every one of them. Such a process stops at once with ``EXIT_CODE`` and prints
nothing; the launching process turns that into one message.
"""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path
from types import TracebackType

from ssl_core.errors import ConfigError

EXIT_CODE = 87  # a spawned process found pretrain called while its script was imported


class MissingMainGuard(ConfigError):
    """The script calls pretrain at import time, so the processes it starts call it too."""


def importing_main_in_child() -> bool:
    """True in a process started by multiprocessing while it imports the parent's script
    (``_inheriting`` is set for exactly that phase, see multiprocessing.spawn._main)."""
    return bool(getattr(multiprocessing.current_process(), "_inheriting", False))


def stop_if_importing_main() -> None:
    """Called first thing by ``pretrain``: a spawned process re-running the script ends here,
    quietly (SystemExit prints no traceback); its parent explains."""
    if importing_main_in_child():
        raise SystemExit(EXIT_CODE)


def missing_guard(devices: int) -> MissingMainGuard:
    """The launching process's error once its processes stopped with ``EXIT_CODE``. Raised
    at a script's top level, it is printed as one paragraph, without a traceback."""
    main = sys.modules.get("__main__")
    script = Path(getattr(main, "__file__", None) or "your script").name
    _print_uncaught_as_one_message()
    return MissingMainGuard(
        f"pretrain(devices={devices}) starts {devices} processes that each import {script} "
        f"again, and {script} calls pretrain while it is imported. Put the call under "
        f'`if __name__ == "__main__":`, for example:\n'
        f"    import ssl_core\n"
        f'    if __name__ == "__main__":\n'
        f'        ssl_core.pretrain(out="run", data="images", model="torchvision/resnet18", '
        f"devices={devices})"
    )


def _print_uncaught_as_one_message() -> None:
    if getattr(sys.excepthook, "_ssl_core_main_guard", False):
        return
    previous = sys.excepthook

    def hook(
        kind: type[BaseException], value: BaseException, traceback: TracebackType | None
    ) -> None:
        if isinstance(value, MissingMainGuard):
            print(f"Error: {value}", file=sys.stderr)
        else:
            previous(kind, value, traceback)

    hook._ssl_core_main_guard = True  # type: ignore[attr-defined]
    sys.excepthook = hook
