"""Runs stopped by Ctrl-C, SIGTERM (preemption) or SIGKILL (a machine failure) at random
points resume to the same weights as a run never stopped; a finished run resumed changes
nothing; every JSON file written is valid JSON."""

from __future__ import annotations

import json
import math
import os
import random
import re
import shlex
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from conftest import SSL_SCRIPT, WIDE, pretrain_args, run_ssl
from lifecycle_support import make_images
from ssl_core.testing import signal_during_run
from ssl_core.train import run_dir

EPOCHS, BATCH, IMAGES = 3, 8, 64
STEPS = EPOCHS * IMAGES // BATCH
# Where each signal lands: drawn once, so a failure names a point that can be replayed.
POINTS = random.Random(20261130)


def run_options(out: Path, data: Path | str, **extra: object) -> list[str]:
    options: dict[str, object] = {
        "model": "torchvision/resnet18",
        "epochs": EPOCHS,
        "batch_size": BATCH,
        "transform_args": "image_size=32",
        "num_workers": 0,
        "accelerator": "cpu",
        "checkpoint_every_steps": 3,
    }
    return pretrain_args(out=out, data=data, **{**options, **extra})


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return make_images(tmp_path_factory.mktemp("images"), count=IMAGES, side=32)


@pytest.fixture(scope="module")
def reference(images, tmp_path_factory) -> Path:
    """The same run, never stopped."""
    out = tmp_path_factory.mktemp("reference") / "run"
    # Output to a pipe, as in a batch job; a progress line after every step.
    done = run_ssl(*run_options(out, images), env={"SSL_CORE_PROGRESS_SECONDS": "0"})
    assert done.returncode == 0, done.stderr
    return out


def strict_json(text: str) -> object:
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def metric_rows(out: Path) -> list[dict]:
    return [strict_json(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def assert_valid_json_files(out: Path) -> None:
    for path in out.rglob("*.json"):
        strict_json(path.read_text())
    metric_rows(out)


def assert_same_weights(out: Path, reference: Path) -> None:
    ours = torch.load(out / run_dir.EXPORT, weights_only=True)
    theirs = torch.load(reference / run_dir.EXPORT, weights_only=True)
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key


def assert_resumed_like_reference(out: Path, reference: Path) -> None:
    assert_same_weights(out, reference)
    rows, expected = metric_rows(out), metric_rows(reference)
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))  # each step once
    assert [r["loss"] for r in rows] == [r["loss"] for r in expected]
    assert_valid_json_files(out)


def resume_command_from(stderr: str) -> list[str]:
    match = re.search(r"Resume with: (.+)", " ".join(stderr.split()))
    assert match, stderr
    command = shlex.split(match.group(1))
    assert command[0] == "ssl" and command[-1] == "--resume"
    return [str(SSL_SCRIPT), *command[1:]]


@pytest.mark.parametrize(
    ("signum", "exit_code"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
    ids=["SIGINT", "SIGTERM"],
)
def test_a_stop_signal_checkpoints_says_how_to_resume_and_resumes_exactly(
    signum, exit_code, images, reference, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # the printed command is relative to where the run started
    out = Path("run")
    after = POINTS.randrange(2, STEPS // 2)
    stopped = signal_during_run(run_options(out, images), out / "metrics.jsonl", after, (signum,))
    assert stopped.returncode == exit_code, stopped.stderr
    assert "Traceback" not in stopped.stderr + stopped.stdout
    message = re.search(r"Interrupted at step (\d+) of (\d+)", stopped.stderr)
    assert message, stopped.stderr
    step = int(message.group(1))
    assert int(message.group(2)) == STEPS and after <= step < STEPS
    saved = torch.load(out / run_dir.CHECKPOINT, weights_only=True, mmap=True)
    assert saved["step"] == step
    assert not (out / ".ssl-core.lock").exists()

    resumed = subprocess.run(
        resume_command_from(stopped.stderr),
        capture_output=True,
        text=True,
        env={**os.environ, **WIDE},
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"Resuming at step {step} of {STEPS}" in resumed.stdout
    assert_resumed_like_reference(out, reference)


def test_sigkill_then_resume_removes_leftovers_and_resumes_exactly(
    images, reference, tmp_path, monkeypatch
):
    """A killed run leaves its lock (the kernel dropped the lock itself) and maybe a
    half-written checkpoint; the resume takes over the lock, removes the temporary file,
    cuts metrics.jsonl back to the checkpoint, and accepts the data path spelled another way."""
    out = tmp_path / "run"
    after = POINTS.randrange(4, STEPS - 4)
    signal_during_run(run_options(out, images), out / "metrics.jsonl", after, (signal.SIGKILL,))
    assert (out / ".ssl-core.lock").exists()
    half_written = out / "checkpoints" / ".last.ckpt.tmp-999999"
    half_written.write_bytes(b"\0" * 1000)
    saved_step = torch.load(out / run_dir.CHECKPOINT, weights_only=True, mmap=True)["step"]
    assert len(metric_rows(out)) > saved_step  # the steps after the checkpoint are redone

    monkeypatch.chdir(images.parent)
    spelled_otherwise = f"{images.name}/"
    resumed = run_ssl(*run_options(out, spelled_otherwise), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert not half_written.exists()
    assert_resumed_like_reference(out, reference)


def test_ctrl_c_twice_stops_at_once(images, tmp_path):
    """Steps of about a second (128 px views in float32: bf16 on a CPU that has it is
    several times faster): the first Ctrl-C lands just after a step began (the metrics line
    of the one before was just written), the second 0.3 s later, while the run still works
    towards the step boundary: it stops there and then, before the checkpoint a stop at the
    boundary would have written (none was due yet)."""
    out = tmp_path / "run"
    options = run_options(
        out, images, transform_args="image_size=128", checkpoint_every_steps=6, precision="32-true"
    )
    stopped = signal_during_run(
        options, out / "metrics.jsonl", 2, (signal.SIGINT, signal.SIGINT), between=0.3
    )
    assert stopped.returncode == 130, stopped.stderr
    assert "Traceback" not in stopped.stderr + stopped.stdout
    assert "Stopped at once" in stopped.stderr and "Interrupted at step" not in stopped.stderr
    assert len(metric_rows(out)) < 6
    assert not (out / "checkpoints").exists() or not any((out / "checkpoints").iterdir())


def test_ctrl_c_held_down_ends_in_a_message_never_a_traceback(images, tmp_path):
    """Ctrl-C pressed many times, 20 ms apart, until the process has exited: whichever
    one stops the run, the later ones reach a process that is already ending (its handlers
    gone, the interpreter shutting down) and must not print a traceback."""
    out = tmp_path / "run"
    stopped = signal_during_run(
        run_options(out, images), out / "metrics.jsonl", 1, (signal.SIGINT,) * 100, between=0.02
    )
    assert stopped.returncode == 130, stopped.stderr
    assert "Traceback" not in stopped.stderr + stopped.stdout
    assert "Stopped at once" in stopped.stderr or "Interrupted at step" in stopped.stderr


def test_ctrl_c_reaches_every_process_of_a_two_process_run_and_they_stop_together(images, tmp_path):
    """A terminal's Ctrl-C goes to the whole process group, loader workers included: the
    launching process stops the training processes at one step, rank 0 writes the
    checkpoint, and the resume completes every step once."""
    out = tmp_path / "run"
    options = run_options(out, images, devices=2, num_workers=1)
    stopped = signal_during_run(options, out / "metrics.jsonl", 3, (signal.SIGINT,), group=True)
    assert stopped.returncode == 130, stopped.stderr
    assert "Traceback" not in stopped.stderr + stopped.stdout
    step = int(re.search(r"Interrupted at step (\d+)", stopped.stderr).group(1))
    assert torch.load(out / run_dir.CHECKPOINT, weights_only=True, mmap=True)["step"] == step
    resumed = run_ssl(*options, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert [r["step"] for r in metric_rows(out)] == list(range(1, STEPS + 1))


def test_resuming_a_finished_run_says_so_and_changes_nothing(images, reference, monkeypatch):
    before = {
        p: (p.stat().st_mtime_ns, p.read_bytes()) for p in reference.rglob("*") if p.is_file()
    }
    # The same folders, spelled otherwise: absolute and relative, with a trailing slash.
    monkeypatch.chdir(reference.parent)
    again = run_ssl(*run_options(Path(reference.name), f"{images}/"), "--resume")
    assert again.returncode == 0, again.stderr
    assert "already finished" in again.stdout
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in reference.rglob("*") if p.is_file()}
    assert after == before
    assert_valid_json_files(reference)


def test_a_run_killed_before_its_summary_finishes_with_valid_json(images, reference, tmp_path):
    """Trained to the end but killed before the export: the resume trains no step, exports,
    and writes a summary whose loss is null (there was none), not NaN."""
    out = tmp_path / "run"
    os.makedirs(out)
    for path in reference.rglob("*"):
        if path.is_file() and path.name not in ("summary.json", "exported_last.pt"):
            target = out / path.relative_to(reference)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    resumed = run_ssl(*run_options(out, images), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    summary = strict_json((out / "summary.json").read_text())
    assert summary["final_loss"] is None and summary["steps"] == STEPS
    assert_same_weights(out, reference)
    assert_valid_json_files(out)


def test_json_written_by_a_run_has_no_nan(tmp_path):
    path = tmp_path / "summary.json"
    run_dir.write_json(
        path, {"loss": math.nan, "rows": [math.inf, 1.5], "nested": {"x": -math.inf}}
    )
    assert strict_json(path.read_text()) == {
        "loss": None,
        "rows": [None, 1.5],
        "nested": {"x": None},
    }


def test_unattended_output_has_progress_lines_and_an_estimate(reference):
    """Output to a file shows where the run is (the live bar needs a terminal) and, after
    the first steps, how long the run will take."""
    log = (reference / "train.log").read_text()
    progress = re.findall(rf"step (\d+)/{STEPS} \(\d+%\)  epoch \d/{EPOCHS}  loss [\d.]+", log)
    assert len(progress) >= STEPS - 2
    estimate = re.search(r"Estimated time left: .+ for (\d+) more steps", log)
    assert estimate and 0 < int(estimate.group(1)) < STEPS
