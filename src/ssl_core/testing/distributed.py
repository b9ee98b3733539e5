"""One step on one process against the same step split over two: the check that a method's
gradients, gathers and global BatchNorm make several processes train as one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ONE_STEP_SEED = 3


def one_step_on_one_and_two_processes(
    data: Path, out: Path, **options: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The module's state after one step on every image of ``data``: on one process with
    the whole batch, and on two (gloo) with half each, under ``out/step-1`` and
    ``out/step-2``. ``options`` are ``pretrain()``'s. Returns (one, two)."""
    import torch

    import ssl_core
    from ssl_core.data.scan import scan_images

    settings: dict[str, Any] = {
        "model": "torchvision/resnet18",
        "epochs": 1,
        "batch_size": len(scan_images(data)),
        "num_workers": 0,
        "accelerator": "cpu",
        "precision": "32-true",
        "seed": ONE_STEP_SEED,
        **options,
        "transform_args": {"image_size": 32, **options.get("transform_args", {})},
    }
    if settings["batch_size"] % 2:
        raise ValueError(f"the batch ({settings['batch_size']} images) must split in two halves")
    states = []
    for devices in (1, 2):
        result = ssl_core.pretrain(
            out=out / f"step-{devices}", data=data, devices=devices, **settings
        )
        assert result.steps == 1, f"{result.steps} steps on {devices} process(es), not 1"
        states.append(torch.load(result.checkpoint, weights_only=True)["model"])
    return states[0], states[1]


def initial_state(run_dir: Path) -> dict[str, Any]:
    """The module a run started from, rebuilt from its config.json as the engine builds it
    (seeded with the run's seed, then the backbone, then the method's module)."""
    import torch

    import ssl_core
    from ssl_core.method import build_module
    from ssl_core.run_info import RunInfo

    config = json.loads((run_dir / "config.json").read_text())
    method_cls = ssl_core.get_method(config["method"])
    method = method_cls(method_cls.args_model.model_validate(config["method_args"]))
    run = RunInfo(epochs=1, steps_per_epoch=1, global_batch_size=config["batch_size"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config["seed"])
        backbone = ssl_core.build_backbone(config["model"], **(config.get("model_args") or {}))
        module = build_module(method, backbone, run)
    return module.state_dict()


def assert_same_step(
    one: dict,
    two: dict,
    initial: dict,
    running_rtol: float = 1e-5,
    unreachable: tuple = (),
    update_rtol: float = 0.02,
) -> None:
    """Two processes made the same update as one. Weights are compared by the size of their
    update (at most ``update_rtol`` apart): float32 summation order (convolutions on 8 or 16
    images, split reductions) leaves ~0.5% on photographs, while per-process BatchNorm
    instead of the global one leaves over 100%. Every weight must have moved but those in
    ``unreachable`` (no gradient reaches them), which must be unchanged on both."""
    import torch

    assert one.keys() == two.keys() == initial.keys()
    for key, value in one.items():
        if not value.is_floating_point():
            assert torch.equal(value, two[key]), key
        elif "running" in key:  # global BN statistics: the same batch seen whole or split
            torch.testing.assert_close(
                two[key], value, rtol=running_rtol, atol=running_rtol / 10, msg=key
            )
        else:
            update_one, update_two = value - initial[key], two[key] - initial[key]
            if key in unreachable:
                assert update_one.norm() == update_two.norm() == 0, key
                continue
            assert update_one.norm() > 0, key
            relative = (update_two - update_one).norm() / update_one.norm()
            assert relative < update_rtol, (key, relative.item())


def check_one_vs_two_processes(
    method: str,
    data: Path,
    tmp_path: Path,
    unreachable: tuple[str, ...] = (),
    running_rtol: float = 1e-5,
    update_rtol: float = 0.05,
    **options: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One step of ``method`` on every image of ``data`` (an even number, 16 is plenty) on
    one process equals the step on two gloo processes of half the batch each. ``options``
    are ``pretrain()``'s (``method_args`` for small heads); ``unreachable`` names the
    state keys no gradient reaches; ``running_rtol`` bounds BatchNorm's running statistics
    and ``update_rtol`` each weight's update (drawn images leave up to ~3% on a weight whose
    update nearly cancels, with one thread; a per-process BatchNorm leaves over 100%).
    The method must be importable by the two processes (installed, or a module on the
    path). Returns the two states, for the method's own further checks."""
    one, two = one_step_on_one_and_two_processes(data, tmp_path, method=method, **options)
    initial = initial_state(tmp_path / "step-1")
    assert_same_step(
        one, two, initial, running_rtol, unreachable=unreachable, update_rtol=update_rtol
    )
    return one, two
