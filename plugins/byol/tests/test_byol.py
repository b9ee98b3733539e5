"""BYOL as a first-party plugin: its defaults, loss, momentum target and views, and
training end to end on one and two processes, with an exact resume."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch

import ssl_core
from ssl_byol import BYOLArgs, BYOLModel, BYOLTransform, BYOLTransformArgs, byol_loss
from ssl_core.testing import (
    check_export_loads,
    check_one_vs_two_processes,
    check_plugin,
    check_resume_exact,
    tiny_backbone,
    train_steps,
)
from ssl_core.transforms import GaussianBlur, RandomSolarize

SMALL_HEADS = {"projection_hidden_dim": 64, "projection_dim": 16, "prediction_hidden_dim": 64}


def paper_tau(step: int, total: int, base: float = 0.99) -> float:
    """The BYOL paper's τ = 1 − (1 − τ_base)·(cos(πk/K) + 1)/2."""
    return 1 - (1 - base) * (math.cos(math.pi * step / total) + 1) / 2


def test_defaults_follow_the_paper():
    byol = ssl_core.get_method("byol")
    assert byol.transform == "byol" and byol.sync_batchnorm
    opt = byol.default_optimizer
    assert (opt.name, opt.lr, opt.lr_reference_batch, opt.weight_decay, opt.warmup_epochs) == (
        "lars",
        0.2,
        256,
        1.5e-6,
        10,
    )
    args = BYOLArgs()
    assert (args.projection_hidden_dim, args.projection_dim, args.prediction_hidden_dim) == (
        4096,
        256,
        4096,
    )
    assert (args.momentum_start, args.momentum_end) == (0.99, 1.0)
    views = BYOLTransformArgs()
    jitter = views.color_jitter
    assert (jitter.prob, jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) == (
        0.8,
        0.4,
        0.4,
        0.2,
        0.1,
    )
    assert views.random_gray_scale == 0.2
    assert (views.view_1.gaussian_blur.prob, views.view_1.solarize.prob) == (1.0, 0.0)
    assert (views.view_2.gaussian_blur.prob, views.view_2.solarize.prob) == (0.1, 0.2)


def test_momentum_that_falls_is_refused():
    with pytest.raises(ssl_core.ConfigError, match="momentum_end must not be below"):
        ssl_core.pretrain(
            out="unused",
            data="unused",
            model="torchvision/resnet18",
            method="byol",
            method_args={"momentum_start": 0.99, "momentum_end": 0.9},
        )


def reference_loss(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """The paper's equation 2 with Python floats: ‖p/‖p‖ − z/‖z‖‖², averaged over the batch."""
    total = 0.0
    for p, z in zip(prediction.tolist(), target.tolist(), strict=True):
        p_norm = math.sqrt(sum(x * x for x in p))
        z_norm = math.sqrt(sum(x * x for x in z))
        total += sum((a / p_norm - b / z_norm) ** 2 for a, b in zip(p, z, strict=True))
    return total / len(prediction)


@pytest.mark.parametrize(("n", "d"), [(2, 3), (7, 16), (32, 256)])
def test_loss_matches_float64_reference(n, d):
    generator = torch.Generator().manual_seed(n + d)
    p, z = torch.randn(n, d, generator=generator), torch.randn(n, d, generator=generator)
    expected = reference_loss(p.double(), z.double())
    assert byol_loss(p.double(), z.double()).item() == pytest.approx(expected, rel=1e-9)
    assert byol_loss(p, z).item() == pytest.approx(expected, rel=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the loss itself stays float32
        assert byol_loss(p.bfloat16(), z.bfloat16()).dtype == torch.float32


def test_no_gradient_reaches_the_target():
    p = torch.randn(4, 8, requires_grad=True)
    z = torch.randn(4, 8, requires_grad=True)
    byol_loss(p, z).backward()
    assert p.grad is not None and z.grad is None


def build_model(total_steps: int = 10) -> BYOLModel:
    return BYOLModel(tiny_backbone(), BYOLArgs(**SMALL_HEADS), total_steps)


def test_target_starts_as_a_frozen_copy_of_the_online_network():
    model = build_model()
    online = {**model.backbone.state_dict(), **model.projection.state_dict()}
    target = {**model.target_backbone.state_dict(), **model.target_projection.state_dict()}
    assert online.keys() == target.keys()
    assert all(torch.equal(online[k], target[k]) for k in online)
    assert not any(p.requires_grad for p in model.target_backbone.parameters())
    assert not any(p.requires_grad for p in model.target_projection.parameters())


@pytest.mark.parametrize("step", [0, 3, 5, 9])
def test_each_update_moves_the_target_by_the_papers_tau(step):
    model = build_model(total_steps=10)
    with torch.no_grad():  # the online network has trained away from its copy
        for param in [*model.backbone.parameters(), *model.projection.parameters()]:
            param.add_(torch.randn_like(param))
    online = [p.detach().double().clone() for p in model.backbone.parameters()]
    online += [p.detach().double().clone() for p in model.projection.parameters()]
    before = [p.detach().double().clone() for p in model.target_backbone.parameters()]
    before += [p.detach().double().clone() for p in model.target_projection.parameters()]

    model.on_after_optimizer_step(step)

    tau = paper_tau(step, 10)
    after = [*model.target_backbone.parameters(), *model.target_projection.parameters()]
    for new, old, source in zip(after, before, online, strict=True):
        expected = tau * old + (1 - tau) * source
        torch.testing.assert_close(new.double(), expected, rtol=1e-6, atol=1e-7)
    model.on_before_forward(step)
    assert model.momentum.item() == pytest.approx(tau, rel=1e-7)


def test_forward_runs_each_view_alone_and_reports_the_momentum():
    model = build_model(total_steps=10)
    sizes = []
    model.backbone.register_forward_hook(lambda m, inputs, out: sizes.append(len(inputs[0])))
    views = [torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16)]
    model.on_before_forward(0)
    output = model(views)
    assert sizes == [4, 4]  # two online passes of one view each (the target's are its own)
    assert output.metrics["momentum"].item() == pytest.approx(0.99)
    model.eval()
    with torch.no_grad():
        p = [model.prediction(model.projection(model.backbone(v))) for v in views]
        z = [model.target_projection(model.target_backbone(v)) for v in views]
        expected = reference_loss(p[0], z[1]) + reference_loss(p[1], z[0])
        assert model(views).loss.item() == pytest.approx(expected, rel=1e-5)


def drawn_rate(recipe, op_type, name, draws=4000) -> float:
    rng = random.Random(0)
    column = recipe.column(op_type, name)
    return sum(recipe.draw(64, 64, rng)[1][column] for _ in range(draws)) / draws


def test_views_are_blurred_and_solarized_asymmetrically():
    first, second = BYOLTransform(BYOLTransformArgs(image_size=32)).build_batched().recipes
    assert drawn_rate(first, GaussianBlur, "applied") == 1.0
    assert drawn_rate(first, RandomSolarize, "applied") == 0.0
    assert drawn_rate(second, GaussianBlur, "applied") == pytest.approx(0.1, abs=0.02)
    assert drawn_rate(second, RandomSolarize, "applied") == pytest.approx(0.2, abs=0.02)


def test_passes_the_plugin_checks():
    check_plugin("byol")


def test_trains_end_to_end_logs_tau_and_exports_the_online_backbone(ssl_image_folder, tmp_path):
    out, total = tmp_path / "run", 8  # 2 epochs of 4 batches of 16
    images = ssl_image_folder(count=64)
    result = train_steps(
        "byol", images, out=out, steps=total, epochs=2, batch_size=16, method_args=SMALL_HEADS
    )
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == list(range(1, total + 1))
    for row in rows:  # the row of step k logs the τ of update k (counted from 0)
        assert row["momentum"] == pytest.approx(paper_tau(row["step"] - 1, total), abs=1e-7)
    assert all(0 <= row["loss"] <= 8 for row in rows)

    check_export_loads(result)
    checkpoint = torch.load(out / "checkpoints/last.ckpt", weights_only=True)["model"]
    exported = torch.load(out / "exported_models/exported_last.pt", weights_only=True)
    for key, value in exported.items():  # the online backbone, not the target
        assert torch.equal(value, checkpoint[f"backbone.model.{key}"]), key
    weight = "backbone.model.conv1.weight"
    target = checkpoint[f"target_{weight}"]
    assert not torch.equal(target, checkpoint[weight])
    moved = (target - checkpoint[weight]).norm() / checkpoint[weight].norm()
    assert moved < 0.1  # the EMA follows the online weights closely


def test_sigkill_then_resume_is_bit_identical_target_included(ssl_image_folder, tmp_path):
    epochs, per_epoch = 2, 3
    final, expected = check_resume_exact(
        "byol",
        ssl_image_folder(count=per_epoch * 16),
        tmp_path,
        epochs=epochs,
        batch_size=16,
        method_args=SMALL_HEADS,
    )
    assert final["step"] == epochs * per_epoch
    assert any(key.startswith("target_") for key in expected["model"])
    killed = tmp_path / "killed"
    metrics = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
    total = epochs * per_epoch
    assert metrics[-1]["momentum"] == pytest.approx(paper_tau(total - 1, total))


def test_one_step_on_two_processes_equals_one_process(ssl_image_folder, tmp_path):
    """Online and target weights alike (the target moves by (1 − τ) of the online update).
    The projection's last bias feeds the predictor's BatchNorm, which removes any constant
    shift: no gradient reaches it (as in the paper's and lightly's heads)."""
    check_one_vs_two_processes(
        "byol",
        ssl_image_folder(count=16),
        tmp_path,
        unreachable=("projection.3.bias", "target_projection.3.bias"),
        running_rtol=1e-4,
        method_args=SMALL_HEADS,
    )
