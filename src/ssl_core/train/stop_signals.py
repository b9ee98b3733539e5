"""Ctrl-C and SIGTERM (how SLURM and Kubernetes preempt a job) ask the run to stop at the
next step boundary, where it writes a checkpoint and says how to resume; a second Ctrl-C
stops at once."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # the shells' 128 + signal number
NOTICE = b"\nStopping after the current step to write a checkpoint (Ctrl-C again stops at once).\n"


class StopRequest:
    """Set by the first stop signal this process receives."""

    def __init__(self) -> None:
        self.signal: int | None = None

    @property
    def requested(self) -> bool:
        return self.signal is not None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(signal.Signals(self.signal or signal.SIGTERM), 143)


@contextmanager
def stop_requests(spawned: bool = False) -> Iterator[StopRequest]:
    """Catch the stop signals while training.

    ``spawned``: a process started for ``devices=N``. The terminal sends Ctrl-C to every
    process of the group, so these ignore SIGINT and stop on the SIGTERM the launching
    process forwards; otherwise a second SIGINT raises KeyboardInterrupt here.
    """
    request = StopRequest()

    def first_then_hard(signum: int, frame: Any) -> None:
        if request.requested:
            # Only a person presses Ctrl-C twice; a launcher's SIGTERM after the terminal's
            # SIGINT (torchrun forwards it) must not cut the checkpoint short.
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        request.signal = signum
        os.write(2, NOTICE)

    def on_sigterm_when_spawned(signum: int, frame: Any) -> None:
        request.signal = request.signal or signum

    if spawned:
        handlers: dict[int, Any] = {
            signal.SIGINT: signal.SIG_IGN,
            signal.SIGTERM: on_sigterm_when_spawned,
        }
    else:
        handlers = dict.fromkeys(STOP_SIGNALS, first_then_hard)
    with _handlers(handlers):
        yield request


@contextmanager
def forwarding_stops(pids: Callable[[], list[int]]) -> Iterator[StopRequest]:
    """In the process that started the training processes: the first stop signal is sent
    on to them as SIGTERM; a second SIGINT kills them and raises KeyboardInterrupt."""
    request = StopRequest()

    def forward(signum: int, frame: Any) -> None:
        if request.requested:
            if signum == signal.SIGINT:
                _send(pids(), signal.SIGKILL)
                raise KeyboardInterrupt
            return
        request.signal = signum
        os.write(2, NOTICE)
        _send(pids(), signal.SIGTERM)

    with _handlers(dict.fromkeys(STOP_SIGNALS, forward)):
        yield request


def _send(pids: list[int], signum: int) -> None:
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signum)


@contextmanager
def _handlers(handlers: dict[int, Any]) -> Iterator[None]:
    """Install ``handlers`` for the block; Python allows it in the main thread only (an
    embedding application's other threads keep their own handling)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
