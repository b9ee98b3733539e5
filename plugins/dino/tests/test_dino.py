"""DINO as a first-party plugin: its loss against the paper's pseudo-code, the centre and
one step on two processes against one, its schedules, the frozen last layer, multi-crop
views, training end to end (ResNet and ViT, library and command line) and an exact resume."""

from __future__ import annotations

import json
import math
import os
import random

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torchvision

import ssl_core
from ssl_core import RunInfo
from ssl_core.testing import (
    check_export_loads,
    check_one_vs_two_processes,
    check_plugin,
    check_resume_exact,
    run_ssl,
    tiny_backbone,
    train_steps,
)
from ssl_core.transforms import GaussianBlur, RandomSolarize
from ssl_dino import (
    DINOArgs,
    DINOModel,
    DINOTransform,
    DINOTransformArgs,
    auto_local_image_size,
    dino_loss,
)

SMALL_HEAD = {"hidden_dim": 64, "bottleneck_dim": 16, "output_dim": 32}


def test_defaults_follow_the_paper():
    dino = ssl_core.get_method("dino")
    assert dino.transform == "dino" and dino.sync_batchnorm
    opt = dino.default_optimizer
    assert (opt.name, opt.lr, opt.lr_reference_batch, opt.weight_decay) == (
        "adamw",
        0.0005,
        256,
        0.04,
    )
    assert (opt.warmup_epochs, opt.gradient_clip_norm) == (10, 3.0)
    args = DINOArgs()
    assert (args.hidden_dim, args.bottleneck_dim, args.norm_last_layer) == (2048, 256, True)
    assert (args.student_temp, args.warmup_teacher_temp, args.teacher_temp) == (0.1, 0.04, 0.07)
    assert (args.center_momentum, args.momentum_start, args.momentum_end) == (0.9, 0.996, 1.0)
    assert (args.weight_decay_end, args.freeze_last_layer_epochs, args.export) == (
        0.4,
        1,
        "teacher",
    )
    views = DINOTransformArgs()
    assert views.num_local_views == 6
    assert (views.global_random_resize.min_scale, views.global_random_resize.max_scale) == (
        0.14,
        1.0,
    )
    assert (views.local_random_resize.min_scale, views.local_random_resize.max_scale) == (
        0.05,
        0.14,
    )
    jitter = views.color_jitter
    assert (jitter.prob, jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) == (
        0.8,
        0.4,
        0.4,
        0.2,
        0.1,
    )
    assert auto_local_image_size((224, 224)) == (96, 96)
    assert auto_local_image_size((32, 32)) == (16, 16)
    assert auto_local_image_size((64, 128)) == (32, 48)


def reference_loss(teacher, student, center, teacher_temp, student_temp) -> float:
    """The paper's Algorithm 1 with Python floats: for every teacher global view i and every
    student view j ≠ i, −Σ_k p_t(k)·log p_s(k), averaged over pairs and images."""

    def softmax(row: list[float], temp: float) -> list[float]:
        top = max(x / temp for x in row)
        exps = [math.exp(x / temp - top) for x in row]
        return [e / sum(exps) for e in exps]

    total, pairs = 0.0, 0
    for i, t_view in enumerate(teacher):
        for j, s_view in enumerate(student):
            if i == j:
                continue
            per_image = []
            for t_row, s_row in zip(t_view.tolist(), s_view.tolist(), strict=True):
                p_t = softmax(
                    [a - c for a, c in zip(t_row, center.tolist(), strict=True)], teacher_temp
                )
                p_s = softmax(s_row, student_temp)
                per_image.append(-sum(a * math.log(b) for a, b in zip(p_t, p_s, strict=True)))
            total += sum(per_image) / len(per_image)
            pairs += 1
    return total / pairs


@pytest.mark.parametrize(("n", "d", "local"), [(2, 3, 0), (5, 16, 2), (4, 64, 6)])
def test_loss_matches_float64_reference(n, d, local):
    g = torch.Generator().manual_seed(n + d + local)
    teacher = [torch.randn(n, d, generator=g, dtype=torch.float64) for _ in range(2)]
    student = [torch.randn(n, d, generator=g, dtype=torch.float64) for _ in range(2 + local)]
    center = torch.randn(d, generator=g, dtype=torch.float64) * 0.1
    expected = reference_loss(teacher, student, center, 0.04, 0.1)
    got = dino_loss(teacher, student, center, 0.04, 0.1)
    assert got.dtype == torch.float64
    assert got.item() == pytest.approx(expected, rel=1e-9)
    single = dino_loss(
        [t.float() for t in teacher], [s.float() for s in student], center.float(), 0.04, 0.1
    )
    assert single.item() == pytest.approx(expected, rel=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the loss itself stays float32
        low = dino_loss(
            [t.bfloat16() for t in teacher],
            [s.bfloat16() for s in student],
            center.float(),
            0.04,
            0.1,
        )
        assert low.dtype == torch.float32


def run_info(epochs: int = 100, steps_per_epoch: int = 10, batch: int = 8) -> RunInfo:
    return RunInfo(epochs=epochs, steps_per_epoch=steps_per_epoch, global_batch_size=batch)


def build_model(run: RunInfo | None = None, **args) -> DINOModel:
    return DINOModel(tiny_backbone(), DINOArgs(**{**SMALL_HEAD, **args}), run or run_info())


def test_teacher_starts_as_a_frozen_copy_and_sees_only_global_views():
    model = build_model()
    student = {**model.backbone.state_dict(), **model.head.state_dict()}
    teacher = {**model.teacher_backbone.state_dict(), **model.teacher_head.state_dict()}
    assert student.keys() == teacher.keys()
    assert all(torch.equal(student[k], teacher[k]) for k in student)
    assert not any(p.requires_grad for p in model.teacher_backbone.parameters())
    assert not any(p.requires_grad for p in model.teacher_head.parameters())
    sizes = []
    model.teacher_backbone.register_forward_hook(lambda m, i, o: sizes.append(i[0].shape))
    views = [torch.randn(4, 3, 16, 16)] * 2 + [torch.randn(4, 3, 8, 8)] * 3
    loss = model(views).loss
    assert sizes == [torch.Size([8, 3, 16, 16])]  # the two global views, together
    loss.backward()
    assert all(p.grad is None for p in model.teacher_head.parameters())
    assert model.head.mlp[0].weight.grad is not None


def test_head_has_an_l2_bottleneck_and_unit_rows_in_the_last_layer():
    model = build_model()
    rows = model.head.last_layer.weight.norm(dim=1)
    torch.testing.assert_close(rows, torch.ones_like(rows))
    assert model.head.last_layer.scale is None
    learnt = build_model(norm_last_layer=False)
    assert learnt.head.last_layer.scale.requires_grad
    gelus = [m for m in model.head.mlp if isinstance(m, torch.nn.GELU)]
    assert len(gelus) == 2 and model.head.mlp[-1].out_features == 16


def paper_cosine(step: int, total: int, start: float, end: float) -> float:
    return end - (end - start) * (math.cos(math.pi * step / total) + 1) / 2


@pytest.mark.parametrize(
    ("epochs", "per_epoch", "warmup"),
    [(100, 10, 300), (10, 10, 30)],  # 30 epochs; capped at 30% of a short run
)
def test_schedules_follow_their_formulas(epochs, per_epoch, warmup):
    run = run_info(epochs, per_epoch)
    total = run.total_steps
    model = build_model(run)
    optimizer = torch.optim.AdamW(model.param_groups(0.04))
    assert model.schedules.teacher_temp_warmup_steps == warmup
    for step in (0, total // 2, total - 1):
        model.on_before_forward(step)
        momentum = paper_cosine(step, total, 0.996, 1.0)
        weight_decay = paper_cosine(step, total, 0.04, 0.4)
        temp = 0.04 + 0.03 * step / warmup if step < warmup else 0.07
        assert model.momentum.item() == pytest.approx(momentum, rel=1e-6)
        assert model.weight_decay.item() == pytest.approx(weight_decay, rel=1e-6)
        assert model.teacher_temp.item() == pytest.approx(temp, rel=1e-6)
        model.on_before_optimizer_step(step, optimizer)
        decayed, plain = optimizer.param_groups
        assert decayed["weight_decay"] == pytest.approx(weight_decay)
        assert plain["weight_decay"] == 0
    assert model.schedules.momentum(0) == pytest.approx(0.996)
    assert model.schedules.weight_decay(total) == pytest.approx(0.4)


def test_teacher_moves_by_the_momentum():
    model = build_model(run_info(1, 10))
    with torch.no_grad():
        for param in [*model.backbone.parameters(), *model.head.parameters()]:
            param.add_(torch.randn_like(param))
    student = [
        p.detach().double().clone()
        for p in [*model.backbone.parameters(), *model.head.parameters()]
    ]
    before = [
        p.detach().double().clone()
        for p in [*model.teacher_backbone.parameters(), *model.teacher_head.parameters()]
    ]
    model.on_after_optimizer_step(4)
    m = paper_cosine(4, 10, 0.996, 1.0)
    after = [*model.teacher_backbone.parameters(), *model.teacher_head.parameters()]
    for new, old, source in zip(after, before, student, strict=True):
        torch.testing.assert_close(new.double(), m * old + (1 - m) * source, rtol=1e-6, atol=1e-7)


def test_last_layer_is_frozen_during_the_first_epoch_only():
    run = run_info(epochs=2, steps_per_epoch=2)
    model = build_model(run)
    optimizer = torch.optim.AdamW(model.param_groups(0.04), lr=0.01)
    views = [torch.randn(4, 3, 16, 16) for _ in range(2)] + [torch.randn(4, 3, 8, 8)]
    last = [model.head.last_layer.direction.detach().clone()]
    first_mlp = model.head.mlp[0].weight.detach().clone()
    for step in range(4):
        optimizer.zero_grad()
        model.on_before_forward(step)
        model(views).loss.backward()
        model.on_before_optimizer_step(step, optimizer)
        optimizer.step()
        model.on_after_optimizer_step(step)
        last.append(model.head.last_layer.direction.detach().clone())
    assert torch.equal(last[0], last[1]) and torch.equal(last[1], last[2])  # epoch 1
    assert not torch.equal(last[2], last[3]) and not torch.equal(last[3], last[4])
    assert not torch.equal(first_mlp, model.head.mlp[0].weight)  # the rest trains at once


def test_views_are_two_global_and_smaller_local_ones():
    args = DINOTransformArgs(image_size=32, num_local_views=3)
    recipes = DINOTransform(args).build_batched().recipes
    assert [r.size for r in recipes] == [(32, 32)] * 2 + [(16, 16)] * 3
    assert recipes[0].crop.min_scale == 0.14 and recipes[2].crop.max_scale == 0.14

    def rate(recipe, op_type, draws=3000) -> float:
        rng, column = random.Random(0), recipe.column(op_type, "applied")
        return sum(recipe.draw(64, 64, rng)[1][column] for _ in range(draws)) / draws

    assert (rate(recipes[0], GaussianBlur), rate(recipes[0], RandomSolarize)) == (1.0, 0.0)
    assert rate(recipes[1], GaussianBlur) == pytest.approx(0.1, abs=0.02)
    assert rate(recipes[1], RandomSolarize) == pytest.approx(0.2, abs=0.02)
    assert rate(recipes[2], GaussianBlur) == pytest.approx(0.5, abs=0.03)
    assert rate(recipes[2], RandomSolarize) == 0.0
    image = torch.randint(0, 256, (3, 40, 48), dtype=torch.uint8)
    views = DINOTransform(args).build()(image)
    assert [tuple(v.shape) for v in views] == [(3, 32, 32)] * 2 + [(3, 16, 16)] * 3
    with pytest.raises(ValueError, match="local_view.gaussian_blur.kernel_size 65"):
        DINOTransformArgs(image_size=64, local_view={"gaussian_blur": {"kernel_size": 65}})
    explicit = DINOTransformArgs(image_size=32, local_image_size=24)
    assert DINOTransform(explicit).build_batched().recipes[-1].size == (24, 24)


# ---- two processes -----------------------------------------------------------------------


def _centre_rank_main(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        model = build_model()
        outputs = torch.randn(8, 32, generator=torch.Generator().manual_seed(5))
        model.update_center(outputs[rank * 4 : (rank + 1) * 4])
        torch.save(model.center, os.path.join(out_dir, f"center{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_centre_is_the_global_batch_mean_on_every_process(tmp_path):
    mp.spawn(_centre_rank_main, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    centres = [torch.load(tmp_path / f"center{r}.pt") for r in range(2)]
    assert torch.equal(centres[0], centres[1])
    outputs = torch.randn(8, 32, generator=torch.Generator().manual_seed(5))
    one = build_model()
    one.update_center(outputs)
    torch.testing.assert_close(centres[0], one.center, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(one.center, 0.1 * outputs.mean(0, keepdim=True))


def test_one_step_on_two_processes_equals_one_process(ssl_image_folder, tmp_path):
    """Student, teacher and centre alike; the last layer unfrozen so that it moves too."""
    one, two = check_one_vs_two_processes(
        "dino",
        ssl_image_folder(count=16),
        tmp_path,
        running_rtol=1e-4,
        method_args={**SMALL_HEAD, "freeze_last_layer_epochs": 0},
        optim_args={"name": "sgd", "lr": 0.5, "gradient_clip_norm": None},
    )
    torch.testing.assert_close(two["center"], one["center"], rtol=1e-4, atol=1e-6)


# ---- end to end --------------------------------------------------------------------------

IMAGES, BATCH = 48, 16  # 3 steps an epoch: seconds on two shared cores


@pytest.fixture
def few_images(ssl_image_folder):
    return ssl_image_folder(count=IMAGES)


SMALL = {
    "model": "torchvision/resnet18",
    "method": "dino",
    "method_args": SMALL_HEAD,
    "transform_args": {"image_size": 32, "num_local_views": 2},
    "batch_size": BATCH,
    "num_workers": 0,
    "precision": "32-true",
}


def test_trains_resnet_end_to_end_logs_schedules_and_exports_the_teacher(few_images, tmp_path):
    out = tmp_path / "run"
    total = 2 * (IMAGES // BATCH)
    result = train_steps(
        "dino",
        few_images,
        out=out,
        steps=total,
        epochs=2,
        batch_size=BATCH,
        method_args=SMALL_HEAD,
        transform_args={"num_local_views": 2},
    )
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    warmup = int(0.3 * total)  # 30 epochs, capped at 30% of the run
    for row in rows:  # the row of step k logs the values of update k − 1
        step = row["step"] - 1
        assert row["momentum"] == pytest.approx(paper_cosine(step, total, 0.996, 1.0), abs=1e-6)
        assert row["weight_decay"] == pytest.approx(paper_cosine(step, total, 0.04, 0.4), abs=1e-6)
        temp = 0.04 + 0.03 * step / warmup if step < warmup else 0.07
        assert row["teacher_temp"] == pytest.approx(temp)
        assert math.isfinite(row["loss"])
    check_export_loads(result)
    checkpoint = torch.load(out / "checkpoints/last.ckpt", weights_only=True)["model"]
    exported = torch.load(out / "exported_models/exported_last.pt", weights_only=True)
    for key, value in exported.items():  # the teacher, not the student
        assert torch.equal(value, checkpoint[f"teacher_backbone.model.{key}"]), key
    assert not torch.equal(exported["conv1.weight"], checkpoint["backbone.model.conv1.weight"])
    assert checkpoint["center"].shape == (1, 32) and checkpoint["center"].abs().sum() > 0


def test_trains_a_vit_from_the_command_line(few_images, tmp_path):
    timm = pytest.importorskip("timm")
    out = tmp_path / "vit"
    done = run_ssl(
        "pretrain",
        "--out",
        str(out),
        "--data",
        str(few_images),
        "--model",
        "timm/vit_tiny_patch16_224",
        "--method",
        "dino",
        "--epochs",
        "1",
        "--batch-size",
        str(BATCH),
        "--num-workers",
        "0",
        "--accelerator",
        "cpu",
        "--precision",
        "32-true",
        "--transform-args",
        "num_local_views=2",
        # output_dim left "auto"
        *("--method-args", "hidden_dim=64", "--method-args", "bottleneck_dim=16"),
    )
    assert done.returncode == 0, done.stderr
    # Built for any size by ssl-core itself, since the local views are smaller; image_size
    # auto: CIFAR's 32 px, whole patches; the local views 16 px, one patch. config.json
    # holds the numbers the run used, not "auto".
    config = json.loads((out / "config.json").read_text())
    assert config["model_args"] == {"dynamic_img_size": True}
    assert config["transform_args"]["image_size"] == [32, 32]
    assert config["transform_args"]["local_image_size"] == [16, 16]
    assert config["method_args"]["output_dim"] == 1024  # 48 images: the smallest bucket
    log = (out / "train.log").read_text()
    assert "model_args dynamic_img_size=true: timm/vit_tiny_patch16_224 is built for" in log
    assert "transform_args.local_image_size auto → 16×16" in log
    assert "method_args.output_dim auto → 1024" in log
    exported = torch.load(out / "exported_models/exported_last.pt", weights_only=True)
    vit = timm.create_model("vit_tiny_patch16_224", num_classes=0)
    vit.load_state_dict(exported)  # every key, the position embedding at 224 px


@pytest.mark.parametrize(
    "model", ["torchvision/resnet18", "timm/vit_tiny_patch16_224"], ids=["resnet", "vit"]
)
def test_trains_on_two_processes_from_the_command_line(few_images, tmp_path, model):
    """devices=2: real processes (gloo), SyncBatchNorm for the ResNet, the centre averaged
    over both; the teacher export loads into the backbone's library."""
    timm = pytest.importorskip("timm")
    out = tmp_path / "two"
    head = [f"method_args.{k}={v}" for k, v in SMALL_HEAD.items()]
    done = run_ssl(
        "pretrain",
        f"out={out}",
        f"data={few_images}",
        f"model={model}",
        "method=dino",
        "epochs=1",
        f"batch_size={BATCH}",
        "devices=2",
        "num_workers=0",
        "accelerator=cpu",
        "precision=32-true",
        "transform_args.num_local_views=2",
        *head,
    )
    assert done.returncode == 0, done.stderr
    assert f"batch {BATCH} ({BATCH // 2} × 2 processes)" in (out / "train.log").read_text()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2, 3]
    assert all(math.isfinite(row["loss"]) for row in rows)
    checkpoint = torch.load(out / "checkpoints/last.ckpt", weights_only=True)["model"]
    assert checkpoint["center"].abs().sum() > 0
    exported = torch.load(out / "exported_models/exported_last.pt", weights_only=True)
    if model.startswith("timm/"):
        timm.create_model("vit_tiny_patch16_224", num_classes=0).load_state_dict(exported)
    else:
        missing = torchvision.models.resnet18().load_state_dict(exported, strict=False)
        assert set(missing.missing_keys) == {"fc.weight", "fc.bias"}


def test_a_vit_kept_at_one_size_is_refused_before_anything_is_written(few_images, tmp_path):
    out = tmp_path / "fixed"
    with pytest.raises(ssl_core.ConfigError) as info:
        ssl_core.pretrain(
            out=out,
            data=few_images,
            epochs=1,
            **{
                **SMALL,
                "model": "timm/vit_tiny_patch16_224",
                "model_args": {"img_size": 32, "dynamic_img_size": False},
            },
        )
    assert str(info.value) == (
        "timm/vit_tiny_patch16_224 takes only 32×32 images, but the dino transform makes views "
        "of 32×32, 16×16: remove model_args.dynamic_img_size (ssl-core then builds it for any "
        "size), or make every view 32×32 (transform_args)."
    )
    assert not out.exists()


def test_sigkill_then_resume_is_bit_identical_teacher_and_centre_included(few_images, tmp_path):
    epochs, per_epoch = 2, IMAGES // BATCH
    final, expected = check_resume_exact(
        "dino",
        few_images,
        tmp_path,
        epochs=epochs,
        batch_size=BATCH,
        method_args=SMALL_HEAD,
        transform_args={"num_local_views": 2},
    )
    assert final["step"] == epochs * per_epoch
    assert "center" in expected["model"] and "teacher_head.mlp.0.weight" in expected["model"]


def test_passes_the_plugin_checks():
    check_plugin("dino")
