"""The command that resumes an interrupted run, for the message that ends it."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence

# Spellings of the settings a resumed command must not repeat.
DROPPED_FLAGS = ("--overwrite", "--resume")
DROPPED_PAIRS = ("overwrite=", "resume=")


def resume_command(command_line: Sequence[str] | None) -> str:
    """``command_line``: the ``ssl`` arguments this run was started with (None from the
    Python API). Under torchrun/srun the launcher's own arguments are not visible here."""
    if command_line is None:
        return "the same ssl_core.pretrain(...) call with resume=True"
    kept = [
        arg
        for arg in command_line
        if arg not in DROPPED_FLAGS and not arg.startswith(DROPPED_PAIRS)
    ]
    program = "ssl" if os.path.basename(sys.argv[0]) == "ssl" else "python -m ssl_core"
    command = f"{program} {shlex.join([*kept, '--resume'])}"
    if "RANK" in os.environ or "SLURM_PROCID" in os.environ:
        return f"your launcher (torchrun, srun) with: {command}"
    return command
