"""Help, listing and docs must not import torch: they answer before torch would load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).parent.parent / "docs"

PROBE = """
import sys
sys.argv = ["ssl", *{args!r}]
from ssl_core.cli import app
try:
    app()
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in ("torch", "torchvision", "timm", "numpy") if m in sys.modules)
print("HEAVY=" + ",".join(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["methods", "list"],
        ["methods", "show", "simclr"],
        ["transforms", "show", "simclr"],
        ["plugins"],
        ["pretrain", "--method", "simclr", "--help"],
        ["docs", "--check", "--out", str(DOCS)],
    ],
)
def test_command_does_not_import_torch(args):
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True
    )
    assert "HEAVY=\n" in result.stderr, result.stderr[-2000:]


def test_importing_ssl_core_and_simclr_is_torch_free():
    code = (
        "import sys, ssl_core, ssl_simclr; ssl_core.list_methods(); print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


LIFECYCLE_PROBE = """
import sys
import ssl_core, ssl_core.transforms, ssl_core.run_info, ssl_core.schedules
run = ssl_core.RunInfo(epochs=2, steps_per_epoch=5, global_batch_size=8)
assert run.total_steps == 10 and run.epoch_of(7) == 1
assert ssl_core.schedules.cosine_schedule(10, 10, 0.99, 1.0) == 1.0
print("torch" in sys.modules)
{after}
"""


def test_what_a_plugin_reads_at_registration_does_not_import_torch():
    """A plugin's registration module may use these at import time (argument schemas, the
    run's shape, schedules); the lazily exported torch-bound names do load torch."""
    code = LIFECYCLE_PROBE.format(after="ssl_core.StepOutput; print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["False", "True"], result.stderr[-2000:]
