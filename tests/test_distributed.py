"""Real multi-process training on CPU with gloo: our own processes and torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch

import ssl_core
from conftest import TINY_RESNET, WIDE, pretrain_args, run_ssl
from ssl_core import ConfigError
from ssl_core.testing import sigkill_during_run

COMMON = TINY_RESNET


def steps(out):
    return [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_end_to_end_through_the_cli(cifar_subset, tmp_path):
    out = tmp_path / "two"
    result = run_ssl(
        *pretrain_args(out=out, data=cifar_subset, epochs=2, batch_size=32, devices=2, **COMMON)
    )
    assert result.returncode == 0, result.stderr
    log = (out / "train.log").read_text()
    assert log.count("ssl-core: simclr") == 1  # rank 0 alone writes
    assert "(16 × 2 processes)" in log
    per_epoch = (300 // 2) // 16
    assert steps(out) == list(range(1, 2 * per_epoch + 1))
    state = torch.load(out / "exported_models/exported_last.pt", weights_only=True)
    assert "conv1.weight" in state and not any("module." in k for k in state)


def test_batch_must_divide_among_processes(tmp_path, cifar_subset):
    with pytest.raises(ConfigError, match="does not divide among 2 processes"):
        ssl_core.pretrain(
            out=tmp_path / "o",
            data=cifar_subset,
            model="torchvision/resnet18",
            batch_size=33,
            devices=2,
            accelerator="cpu",
        )
    assert not (tmp_path / "o").exists()


def test_killed_two_process_run_resumes(cifar_subset, tmp_path):
    out = tmp_path / "killed"
    args = pretrain_args(out=out, data=cifar_subset, epochs=3, batch_size=32, devices=2, **COMMON)
    per_epoch = (300 // 2) // 16
    sigkill_during_run(args, out / "metrics.jsonl", per_epoch + 2)  # launcher and both ranks
    assert torch.load(out / "checkpoints/last.ckpt", weights_only=True)["epoch"] < 3

    resumed = run_ssl(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    final = torch.load(out / "checkpoints/last.ckpt", weights_only=True)
    assert (final["epoch"], final["step"]) == (3, 3 * per_epoch)
    assert final["scheduler"]["_last_lr"] == [0.0, 0.0]


def test_a_failing_rank_ends_the_run_with_its_error(cifar_subset, tmp_path, installed_plugins):
    """The third-party method raises in its first forward on rank 1."""
    start = time.time()
    out = tmp_path / "fail"
    result = run_ssl(
        *pretrain_args(
            out=out,
            data=cifar_subset,
            method="fakemethod",
            method_args="fail_on_rank=1",
            model="torchvision/resnet18",
            transform_args="image_size=32",
            batch_size=32,
            epochs=1,
            devices=2,
            num_workers=0,
            accelerator="cpu",
        ),
        extra_path=[installed_plugins["fake_method"]],
        timeout=180,
    )
    assert result.returncode == 2
    error = result.stderr.partition("Error:")[2]
    assert "process 1 of 2 failed" in error
    assert "RuntimeError: fake method failure on rank 1" in error
    assert f"The full traceback is in {out / 'train.log'}" in error
    assert "Traceback" not in error
    assert time.time() - start < 120  # no hang waiting on the dead rank
    log = (out / "train.log").read_text()
    assert "Process 1 failed" in log and "Traceback (most recent call last)" in log
    assert 'raise RuntimeError(f"fake method failure on rank {rank}")' in log


def test_torchrun_runs_the_same_cli(cifar_subset, tmp_path):
    out = tmp_path / "torchrun"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "ssl_core",
        *pretrain_args(out=out, data=cifar_subset, epochs=1, batch_size=32, **COMMON),
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, **WIDE}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("Pretraining finished") == 1  # rank 0 reports, rank 1 not
    log = (out / "train.log").read_text()
    assert "(16 × 2 processes)" in log and log.count("ssl-core: simclr") == 1
    assert steps(out) == list(range(1, (300 // 2) // 16 + 1))
