"""End to end: a folder of real images in, a pretrained backbone and a run directory out."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
import torchvision

import ssl_core
from conftest import SSL_SCRIPT, held_apart_cifar, pretrain_args, run_ssl
from lifecycle_support import tiny_net
from ssl_core import ConfigError, NonFiniteLoss
from ssl_core.eval.knn import embed_images, knn_accuracy
from ssl_core.testing import sigkill_during_run

SMALL = {
    "model": "torchvision/resnet18",
    "method_args": {"hidden_dim": 128, "output_dim": 32},
    "transform_args": {"image_size": 32},
    "batch_size": 64,
    "num_workers": 0,
}


def read_metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def exported_resnet18(out):
    model = torchvision.models.resnet18()
    result = model.load_state_dict(
        torch.load(out / "exported_models/exported_last.pt", weights_only=True), strict=False
    )
    assert set(result.missing_keys) == {"fc.weight", "fc.bias"}
    assert result.unexpected_keys == []
    model.fc = torch.nn.Identity()
    return model


def register_method(method_name, build, method_transform="simclr", transforms=()):
    """Register a method (and transforms) made here, as an installed plugin would."""
    import types

    from ssl_core import Method, StrictArgs, hookimpl
    from ssl_core.plugins import host

    class TestMethod(Method):
        name = method_name
        args_model = StrictArgs
        transform = method_transform

        def build(self, backbone):
            return build(backbone)

    plugin = types.ModuleType(f"{method_name}_plugin")
    plugin.ssl_register_methods = hookimpl(lambda register: register(TestMethod))
    if transforms:
        plugin.ssl_register_transforms = hookimpl(
            lambda register: [register(t) for t in transforms]
        )
    host.register(plugin, name=method_name)


def test_pretrain_api_end_to_end(cifar_subset, tmp_path):
    out = tmp_path / "run"
    result = ssl_core.pretrain(out=out, data=cifar_subset, epochs=2, **SMALL)

    for name in (
        "train.log",
        "config.json",
        "metrics.jsonl",
        "checkpoints/last.ckpt",
        "exported_models/exported_last.pt",
        "summary.json",
    ):
        assert (out / name).is_file(), name
    assert result.images == 300 and result.skipped_images == 0
    assert result.steps == 2 * (300 // 64)

    metrics = read_metrics(out)
    assert [m["step"] for m in metrics] == list(range(1, result.steps + 1))
    assert {"epoch", "step", "loss", "lr", "images_per_second"} <= set(metrics[0])
    assert all(m["loss"] > 0 for m in metrics)

    config = json.loads((out / "config.json").read_text())
    assert config["method_args"]["temperature"] == 0.1
    assert config["transform_args"]["image_size"] == [32, 32]
    assert config["optim_args"]["lr"] == 0.3

    log = (out / "train.log").read_text()
    assert "epoch 2/2" in log and "Pretrained backbone" in log
    if importlib.util.find_spec("tensorboard") is not None:  # installed by `nox -s tests`
        assert list((out / "tensorboard").glob("events.out.tfevents.*"))

    checkpoint = torch.load(out / "checkpoints/last.ckpt", weights_only=True)
    assert (checkpoint["epoch"], checkpoint["step"]) == (2, result.steps)

    # The export is a torchvision state_dict: evaluate it with kNN on images never trained on.
    model = exported_resnet18(out)
    bank, bank_labels, queries, query_labels = held_apart_cifar()
    query_features = embed_images(model, queries)
    accuracy = knn_accuracy(embed_images(model, bank), bank_labels, query_features, query_labels)
    assert 0.10 < accuracy <= 1.0  # above chance on 10 classes after a few steps
    # ... and it is the trained backbone itself: the checkpoint's backbone gives the same
    # features as the torchvision model built from the export.
    trained = ssl_core.build_backbone("torchvision/resnet18")
    trained.load_state_dict(
        {
            k.removeprefix("backbone."): v
            for k, v in checkpoint["model"].items()
            if k.startswith("backbone.")
        }
    )
    torch.testing.assert_close(embed_images(trained, queries), query_features)


def test_cli_subprocess_end_to_end_and_refused_out(cifar_subset, tmp_path):
    out = tmp_path / "cli-run"
    args = pretrain_args(
        out=out,
        data=cifar_subset,
        model="torchvision/resnet18",
        epochs=1,
        batch_size=64,
        num_workers=0,
        method_args=["hidden_dim=64", "output_dim=16"],
        transform_args="image_size=32",
    )
    first = run_ssl(*args)
    assert first.returncode == 0, first.stderr
    assert "Pretraining finished" in first.stdout
    exported_resnet18(out)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}

    again = run_ssl(*args)
    assert again.returncode == 2
    assert "is not empty" in again.stderr and "--overwrite" in again.stderr
    assert "Traceback" not in again.stderr
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before

    # LightlyTrain's key=value form, with overwrite
    lightly_style = run_ssl(
        "pretrain",
        f"out={out}",
        f"data={cifar_subset}",
        "model=torchvision/resnet18",
        "method=simclr",
        "epochs=1",
        "batch_size=64",
        "num_workers=0",
        "method_args.hidden_dim=64",
        "method_args.output_dim=16",
        "transform_args.image_size=32",
        "overwrite=true",
    )
    assert lightly_style.returncode == 0, lightly_style.stderr


def test_refuses_to_overwrite_a_folder_that_is_not_a_run(tmp_path, cifar_subset):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(ConfigError, match="not an ssl-core run folder"):
        ssl_core.pretrain(out=precious, data=cifar_subset, overwrite=True, **SMALL)
    assert (precious / "thesis.tex").read_text() == "years of work"
    with pytest.raises(ConfigError, match="Cannot resume"):
        ssl_core.pretrain(out=tmp_path / "new", data=cifar_subset, resume=True, **SMALL)


def test_missing_and_empty_data(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        ssl_core.pretrain(out=tmp_path / "o", data=tmp_path / "nope", **SMALL)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(ConfigError, match="No images found"):
        ssl_core.pretrain(out=tmp_path / "o", data=tmp_path / "empty", **SMALL)
    assert not (tmp_path / "o" / "metrics.jsonl").exists()


def test_batch_larger_than_data_is_a_clear_error(tmp_path, cifar_subset):
    with pytest.raises(ConfigError, match="larger than the 300 readable images"):
        ssl_core.pretrain(out=tmp_path / "o", data=cifar_subset, **{**SMALL, "batch_size": 512})


def _uninterrupted(cifar_subset, out, epochs):
    return ssl_core.pretrain(
        out=out, data=cifar_subset, epochs=epochs, precision="32-true", **SMALL
    )


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(cifar_subset, tmp_path):
    epochs, steps_per_epoch = 4, 300 // 64
    out = tmp_path / "killed"
    command = [
        str(SSL_SCRIPT),
        "pretrain",
        f"out={out}",
        f"data={cifar_subset}",
        "model=torchvision/resnet18",
        f"epochs={epochs}",
        "batch_size=64",
        "num_workers=0",
        "precision=32-true",
        "method_args.hidden_dim=128",
        "method_args.output_dim=32",
        "transform_args.image_size=32",
    ]
    sigkill_during_run(command[1:], out / "metrics.jsonl", steps_per_epoch + 2)  # in epoch 2
    saved = torch.load(out / "checkpoints/last.ckpt", weights_only=True)
    assert saved["step"] < epochs * steps_per_epoch  # it really was interrupted

    resumed = run_ssl(*command[1:], "resume=true")
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming at step" in resumed.stdout

    reference = _uninterrupted(cifar_subset, tmp_path / "straight", epochs)
    final = torch.load(out / "checkpoints/last.ckpt", weights_only=True)
    expected = torch.load(reference.checkpoint, weights_only=True)
    assert final["step"] == expected["step"] == epochs * steps_per_epoch
    assert final["scheduler"]["_last_lr"] == expected["scheduler"]["_last_lr"]
    for key, value in expected["model"].items():
        torch.testing.assert_close(final["model"][key], value, rtol=0, atol=0, msg=key)


def test_resume_with_changed_settings_is_refused(cifar_subset, tmp_path):
    out = tmp_path / "run"
    ssl_core.pretrain(out=out, data=cifar_subset, epochs=1, **SMALL)
    with pytest.raises(ConfigError, match="Cannot resume with different settings.*epochs"):
        ssl_core.pretrain(
            out=out, data=cifar_subset, epochs=2, resume=True, **{**SMALL, "batch_size": 32}
        )


def test_nan_loss_stops_with_last_good_checkpoint_intact(cifar_subset, tmp_path):
    from torch import nn

    class Exploding(nn.Module):
        """A method whose loss turns NaN at its 7th step (in the second epoch)."""

        def __init__(self, backbone):
            super().__init__()
            self.backbone = backbone
            self.calls = 0

        def forward(self, views):
            self.calls += 1
            loss = self.backbone(torch.cat(views)).pow(2).mean()
            return loss * float("nan") if self.calls >= 7 else loss

    register_method("exploding", Exploding)
    out = tmp_path / "nan"
    with pytest.raises(NonFiniteLoss, match="loss became nan at step 7 .epoch 2"):
        ssl_core.pretrain(
            out=out,
            data=cifar_subset,
            method="exploding",
            epochs=3,
            model="torchvision/resnet18",
            transform_args={"image_size": 32},
            batch_size=64,
            num_workers=0,
        )
    saved = torch.load(out / "checkpoints/last.ckpt", weights_only=True)
    assert (saved["epoch"], saved["step"]) == (1, 4)
    assert all(torch.isfinite(v).all() for v in saved["model"].values() if v.is_floating_point())


def test_a_per_image_transform_without_batched_form_trains(cifar_subset, tmp_path):
    """Third-party transforms may give only ``build()``; the engine then calls it per image."""
    from pydantic import Field
    from torch import nn

    from ssl_core import StrictArgs, Transform

    calls = []

    class CenterArgs(StrictArgs):
        size: int = Field(16, description="Output side.")

    class CenterViews(Transform):
        name = "center"
        args_model = CenterArgs

        def build(self):
            size = self.args.size

            def views(image):
                calls.append(image.shape)
                x = image[:, :size, :size].float() / 255
                return [x, x.flip(-1)]

            return views

    class Pull(nn.Module):
        def __init__(self, backbone):
            super().__init__()
            self.backbone = backbone

        def forward(self, views):
            a, b = self.backbone(torch.cat(views)).chunk(2)
            return (a - b).pow(2).mean()

    register_method("pull", Pull, method_transform="center", transforms=[CenterViews])
    result = ssl_core.pretrain(
        out=tmp_path / "run",
        data=cifar_subset,
        method="pull",
        model="torchvision/resnet18",
        epochs=1,
        batch_size=50,
        num_workers=0,
    )
    assert result.steps == 6 and len(calls) == 300
    assert all(shape == (3, 32, 32) for shape in calls)


def test_model_that_cannot_take_the_image_size_fails_with_one_message(cifar_subset, tmp_path):
    """Refused before anything is written, naming torchvision's key for the size."""
    result = run_ssl(
        "pretrain",
        f"out={tmp_path / 'vit'}",
        f"data={cifar_subset}",
        "model=torchvision/vit_b_32",
        "transform_args.image_size=32",
        "batch_size=32",
        "epochs=1",
        "num_workers=0",
    )
    assert result.returncode == 2
    assert result.stderr == (
        "Error: torchvision/vit_b_32 takes only 224×224 images, but the simclr transform makes "
        "views of 32×32: build it for the view size with model_args.image_size, or set "
        "transform_args.image_size to 224.\n"
    )
    assert not (tmp_path / "vit").exists()


def test_a_model_failing_its_first_step_is_named_with_the_view_shape(cifar_subset, tmp_path):
    """A user's own module whose sizes are not known up front fails its first step with one
    message naming the model, the view shape and where the traceback is."""
    fixed_input = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 64 * 64, 8))
    with pytest.raises(ssl_core.FirstStepFailed) as info:
        ssl_core.pretrain(
            out=tmp_path / "run", data=cifar_subset, epochs=1, **{**SMALL, "model": fixed_input}
        )
    message = str(info.value)
    assert message.startswith("custom/Sequential failed on the first batch of views (3×32×32)")
    assert "Traceback" in (tmp_path / "run" / "train.log").read_text()


def test_out_that_cannot_be_created_is_a_clear_error(cifar_subset, tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(ConfigError, match="Cannot use the output directory"):
        ssl_core.pretrain(out=tmp_path / "a_file" / "run", data=cifar_subset, **SMALL)
    with pytest.raises(ConfigError, match="is a file, not a directory"):
        ssl_core.pretrain(out=tmp_path / "a_file", data=cifar_subset, **SMALL)
    assert (tmp_path / "a_file").read_text() == "not a folder"


def test_compile_trains_the_same_model_and_exports_it_unwrapped(cifar_subset, tmp_path):
    """compile=True runs the same computation (losses agree step by step with the eager
    run) and saves plain state_dicts, without torch.compile's wrapper in the keys."""
    common = {
        "data": cifar_subset,
        "epochs": 1,
        "batch_size": 32,
        "num_workers": 0,
        "precision": "32-true",
        "transform_args": {"image_size": 16},
        "method_args": {"hidden_dim": 16, "output_dim": 8},
    }
    ssl_core.pretrain(out=tmp_path / "eager", model=tiny_net(), **common)
    from torch._dynamo.utils import counters

    counters.clear()
    ssl_core.pretrain(out=tmp_path / "compiled", model=tiny_net(), compile=True, **common)
    assert counters["stats"]["unique_graphs"] >= 1  # it did compile

    eager_losses = [m["loss"] for m in read_metrics(tmp_path / "eager")]
    compiled_losses = [m["loss"] for m in read_metrics(tmp_path / "compiled")]
    assert len(compiled_losses) == 300 // 32
    torch.testing.assert_close(compiled_losses, eager_losses, rtol=1e-3, atol=1e-4)
    export = torch.load(tmp_path / "compiled/exported_models/exported_last.pt", weights_only=True)
    assert export.keys() == tiny_net().state_dict().keys()
    checkpoint = torch.load(tmp_path / "compiled/checkpoints/last.ckpt", weights_only=True)
    assert not any("_orig_mod" in key for key in checkpoint["model"])
