"""SIGKILL a real ``ssl pretrain`` mid-run, ``--resume`` it, and compare with a run that was
never interrupted: a method that keeps all its state in the checkpoint ends bit for bit the
same."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ssl_core.testing.processes import key_value_args, run_ssl, sigkill_during_run


def kill_and_resume(options: list[str], out: Path, kill_after_lines: int) -> tuple[dict, int]:
    """Run ``ssl OPTIONS out=OUT``, SIGKILL it and its processes once ``kill_after_lines``
    steps are logged, resume it to the end. Returns its final checkpoint and the step of
    the checkpoint the kill left."""
    import torch

    sigkill_during_run([*options, f"out={out}"], out / "metrics.jsonl", kill_after_lines)
    saved_step = torch.load(out / "checkpoints/last.ckpt", weights_only=True)["step"]
    resumed = run_ssl(*options, f"out={out}", "resume=true")
    assert resumed.returncode == 0, resumed.stderr
    return torch.load(out / "checkpoints/last.ckpt", weights_only=True), saved_step


def straight_run(options: list[str], out: Path) -> dict:
    """Run ``ssl OPTIONS out=OUT`` to its end; its final checkpoint."""
    import torch

    straight = run_ssl(*options, f"out={out}")
    assert straight.returncode == 0, straight.stderr
    return torch.load(out / "checkpoints/last.ckpt", weights_only=True)


def killed_resumed_and_straight(
    options: list[str], tmp_path: Path, kill_after_lines: int
) -> tuple[dict, dict, int]:
    """Run ``ssl`` OPTIONS (key=value form, without out=) killed with SIGKILL after
    ``kill_after_lines`` steps, then resumed, in ``tmp_path/killed``; and once straight
    through in ``tmp_path/straight``. Returns the final checkpoints of both and the step
    the killed run had saved."""
    final, saved_step = kill_and_resume(options, tmp_path / "killed", kill_after_lines)
    expected = straight_run(options, tmp_path / "straight")
    assert final["model"].keys() == expected["model"].keys()
    return final, expected, saved_step


def assert_same_checkpoint(final: dict, expected: dict) -> None:
    """Position, module state and optimiser state equal, bit for bit."""
    import torch

    assert (final["epoch"], final["step"]) == (expected["epoch"], expected["step"])
    assert final["model"].keys() == expected["model"].keys()
    differ = [k for k, v in expected["model"].items() if not torch.equal(final["model"][k], v)]
    assert not differ, f"after the resume these differ from the straight run: {differ}"
    for (key, state), (_, other) in zip(
        sorted(expected["optimizer"]["state"].items()),
        sorted(final["optimizer"]["state"].items()),
        strict=True,
    ):
        for name, value in state.items():
            if torch.is_tensor(value):
                assert torch.equal(other[name], value), f"optimizer state {key}.{name}"


def check_resume_exact(
    method: str, data: Path, tmp_path: Path, **options: Any
) -> tuple[dict, dict]:
    """``ssl pretrain --method METHOD`` on ``data`` killed with SIGKILL in its second epoch
    (after the first epoch's checkpoint), then resumed with ``--resume``, ends with the
    checkpoint of a run never interrupted, bit for bit: parameters, buffers, optimiser.
    ``options`` are ``pretrain()``'s (defaults: a ResNet-18 on 32 px views, 2 epochs, batch
    8, on the CPU in float32); give at least 2 steps an epoch. The runs are in
    ``tmp_path/straight`` and ``tmp_path/killed``. Returns (resumed, straight) checkpoints."""
    settings: dict[str, Any] = {
        "model": "torchvision/resnet18",
        "epochs": 2,
        "batch_size": 8,
        "num_workers": 0,
        "accelerator": "cpu",
        "precision": "32-true",
        **options,
        "transform_args": {"image_size": 32, **options.get("transform_args", {})},
    }
    arguments = ["pretrain", *key_value_args(method=method, data=data, **settings)]
    expected = straight_run(arguments, tmp_path / "straight")
    per_epoch = expected["step"] // settings["epochs"]
    if per_epoch < 2:
        raise ValueError(
            f"check_resume_exact needs at least 2 steps an epoch to kill the run inside its "
            f"second epoch; this one makes {per_epoch}: give more images or a smaller batch_size"
        )
    final, saved_step = kill_and_resume(arguments, tmp_path / "killed", per_epoch + 1)
    assert saved_step == per_epoch, f"the kill left the checkpoint of step {saved_step}"
    assert_same_checkpoint(final, expected)
    return final, expected
