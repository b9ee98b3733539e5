"""Real multi-process training on CPU with gloo: our own processes and torchrun."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import torch

import ssl_core
from conftest import WIDE, pretrain_args, run_ssl, sigkill_during_run, spread_images
from ssl_core import ConfigError

COMMON = {
    "model": "torchvision/resnet18",
    "transform_args": "image_size=32",
    "method_args": ["hidden_dim=64", "output_dim=16"],
    "num_workers": 0,
    "accelerator": "cpu",
    "precision": "32-true",
}


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


def _one_step(tmp_path, images, devices):
    result = ssl_core.pretrain(
        out=tmp_path / f"step-{devices}",
        data=images,
        model="torchvision/resnet18",
        method_args={"hidden_dim": 64, "output_dim": 16},
        transform_args={"image_size": 32},
        epochs=1,
        batch_size=16,
        num_workers=0,
        devices=devices,
        accelerator="cpu",
        precision="32-true",
        seed=3,
    )
    assert result.steps == 1
    return torch.load(result.checkpoint, weights_only=True)["model"]


def _initial_model():
    """The model exactly as the runs build it (seeded with their seed just before)."""
    torch.manual_seed(3)
    backbone = ssl_core.build_backbone("torchvision/resnet18")
    simclr = ssl_core.get_method("simclr")
    return simclr(simclr.args_model(hidden_dim=64, output_dim=16)).build(backbone).state_dict()


def test_one_step_on_two_processes_equals_one_process(tmp_path):
    source = spread_images(16)  # from all classes
    images = tmp_path / "sixteen"
    images.mkdir()
    for path in source:
        shutil.copy(path, images / f"{path.parent.name}_{path.name}")
    single = _one_step(tmp_path, images, devices=1)
    double = _one_step(tmp_path, images, devices=2)
    initial = _initial_model()
    for key, value in single.items():
        if not value.is_floating_point():
            assert torch.equal(value, double[key]), key
        elif "running" in key:  # global BN statistics: the same batch seen whole or split
            torch.testing.assert_close(double[key], value, rtol=1e-5, atol=1e-6, msg=key)
        else:
            # The update itself, compared relative to its size: float32 summation order
            # (convolutions on 8 or 16 images, split reductions) leaves ~0.5% here, while
            # per-process BatchNorm instead of the global one puts it above 100%.
            update_one, update_two = value - initial[key], double[key] - initial[key]
            assert update_one.norm() > 0, key
            relative = (update_two - update_one).norm() / update_one.norm()
            assert relative < 0.02, (key, relative.item())


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
