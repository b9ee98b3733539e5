"""Errors a user can cause and fix; the CLI prints them as one paragraph, no traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SSLCoreError(Exception):
    """Base of every error that is the user's to fix (bad name, bad argument, bad path)."""


class UnknownNameError(SSLCoreError, KeyError):
    """A method, backbone or transform name that no plugin registered."""

    def __init__(
        self, kind: str, name: str, known: Iterable[str], hint: str = "", cause: str = ""
    ) -> None:
        self.kind = kind
        self.name = name
        self.known = sorted(known)
        if cause:  # we know why it is missing: say that, not "unknown"
            super().__init__(f"The {kind} '{name}' is not available: {cause}")
            return
        message = f"Unknown {kind} '{name}'."
        close = difflib.get_close_matches(name, self.known, n=1, cutoff=0.6)
        if close:
            message += f" Did you mean '{close[0]}'?"
        if self.known:
            shown = ", ".join(self.known[:20])
            more = f" (and {len(self.known) - 20} more)" if len(self.known) > 20 else ""
            message += f" Available: {shown}{more}."
        else:
            message += f" No {kind} is registered: is a plugin that provides one installed?"
        if hint:
            message += f" {hint}"
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ConfigError(SSLCoreError, ValueError):
    """An argument the user gave is unknown, ill-typed or out of range."""


class PluginError(SSLCoreError):
    """Plugins that cannot work together, e.g. two registering the same name."""


class NameConflictError(PluginError, KeyError):
    """A name that two plugins register: it cannot be used until one of them is blocked."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class NonFiniteLoss(SSLCoreError):
    """The loss (the mean over all processes) became NaN or infinite; training stopped."""


class FirstStepFailed(SSLCoreError):
    """The model could not take the first batch: usually image size and model disagree."""


class RankFailed(SSLCoreError):
    """One of the training processes failed; the others were stopped."""


class Interrupted(SSLCoreError):
    """Ctrl-C or SIGTERM stopped the run at a step boundary, after writing a checkpoint."""

    def __init__(self, message: str, exit_code: int = 130) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class DiskFull(SSLCoreError):
    """A file of the run could not be written (no space left, quota, file size limit)."""
