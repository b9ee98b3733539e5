"""The plugin author's test kit. Installing ssl-core makes its fixtures available to pytest
(``ssl_image_folder``, ``ssl_register_plugin``; see ``ssl_core.testing.pytest_plugin``);
these functions check a method as ssl-core's users will meet it:

- ``check_plugin``: imports without torch, complete schemas, help and docs that render;
- ``train_steps`` and ``check_export_loads``: a few real steps, and an export that loads
  into the backbone's own library;
- ``check_resume_exact``: SIGKILL, ``--resume``, and the same checkpoint bit for bit;
- ``check_one_vs_two_processes``: one process of batch 2B makes the step of two of B.

Importing this package does not import torch; the helpers do when they run.
"""

from __future__ import annotations

from ssl_core.testing.distributed import (
    ONE_STEP_SEED,
    assert_same_step,
    check_one_vs_two_processes,
    initial_state,
)
from ssl_core.testing.images import write_image_folder
from ssl_core.testing.plugin_check import check_plugin
from ssl_core.testing.processes import run_ssl, sigkill_during_run, signal_during_run
from ssl_core.testing.resume import check_resume_exact, killed_resumed_and_straight
from ssl_core.testing.training import check_export_loads, tiny_backbone, tiny_net, train_steps

__all__ = [
    "ONE_STEP_SEED",
    "assert_same_step",
    "check_export_loads",
    "check_one_vs_two_processes",
    "check_plugin",
    "check_resume_exact",
    "initial_state",
    "killed_resumed_and_straight",
    "run_ssl",
    "sigkill_during_run",
    "signal_during_run",
    "tiny_backbone",
    "tiny_net",
    "train_steps",
    "write_image_folder",
]
