"""Every argument mistake ends in one message (a ConfigError from the API, "Error: ..." and
exit code 2 from the command line), never in a traceback or a run that learns nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

import ssl_core
from conftest import WIDE, pretrain_args, run_ssl
from lifecycle_support import make_images, registered, small_run
from ssl_core import ConfigError, Method, StrictArgs
from ssl_core.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Eight small images: enough for every check that needs the data."""
    return make_images(tmp_path_factory.mktemp("images"), count=8, side=32)


def run_api(tmp_path: Path, images: Path, **options: object) -> ConfigError:
    """pretrain with ``options``; the ConfigError it must raise. Nothing of a run is written."""
    out = tmp_path / "run"
    values: dict[str, object] = {
        "out": out,
        "data": images,
        "model": "torchvision/resnet18",
        "transform_args": {"image_size": 32},
        "batch_size": 4,
        "epochs": 1,
        "num_workers": 0,
        "accelerator": "cpu",
        **options,
    }
    with pytest.raises(ConfigError) as info:
        ssl_core.pretrain(**values)
    assert not (out / "config.json").exists() and not (out / "train.log").exists()
    return info.value


API_MISTAKES = [
    # 1. model_args the constructor does not take, read from its signature
    (
        {"model_args": {"foo": 1}},
        ["torchvision/resnet18 does not take model_args 'foo'", "zero_init_residual", "groups"],
    ),
    (
        {"model": "timm/resnet18", "model_args": {"foo": 1}},
        ["timm/resnet18 does not take model_args 'foo'", "drop_path_rate"],
    ),
    (
        {"model": "timm/vit_tiny_patch16_224", "model_args": {"image_size": 32}},
        ["Did you mean 'img_size' instead of 'image_size'?"],
    ),
    (
        {"model": "torchvision/vit_b_16", "model_args": {"img_size": 32}},
        ["Did you mean 'image_size' instead of 'img_size'?"],
    ),
    (
        {"model": "timm/resnet18", "model_args": {"num_classes": 10}},
        ["model_args.num_classes cannot be set", "num_classes=0", "Remove it"],
    ),
    ({"model_args": {"weights": "DEFAULT"}}, ["model_args.weights cannot be set"]),
    # 3. wrong Python types
    ({"model": 789}, ["model must be a backbone name", "torch.nn.Module", "got int 789"]),
    ({"model": "torchvision/resnet18", "data": 123}, ["'data'", "str | list[str]"]),
    ({"out": None}, ["'out'", "takes str"]),
    ({"method_args": "x"}, ["method_args must be a mapping"]),
    ({"epochs": "ten"}, ["'epochs'", "takes int"]),
    ({"batch_size": 0}, ["'batch_size'", "greater than 0"]),
    # 5. settings the method cannot learn from
    ({"batch_size": 1}, ["SimCLR needs at least 2 images per batch", "--batch-size 2"]),
    (
        {"method": "byol", "batch_size": 1},
        ["BYOL needs at least 2 images per batch", "BatchNorm", "--batch-size 2"],
    ),
]


@pytest.mark.parametrize(
    ("options", "expected"), API_MISTAKES, ids=[str(o)[:60] for o, _ in API_MISTAKES]
)
def test_api_mistake_is_one_config_error(options, expected, tmp_path, images):
    message = str(run_api(tmp_path, images, **options))
    for text in expected:
        assert text in message, message


def test_constructor_rejecting_a_value_is_a_config_error_quoting_it(tmp_path, images):
    """A key the constructor takes, with a value it refuses: the library's own words."""
    with pytest.raises(ConfigError) as info:
        ssl_core.pretrain(
            out=tmp_path / "run",
            data=images,
            model="torchvision/resnet18",
            model_args={"groups": 2},
            transform_args={"image_size": 32},
            batch_size=4,
            epochs=1,
            num_workers=0,
            accelerator="cpu",
        )
    message = str(info.value)
    assert "could not be built with model_args {'groups': 2}" in message
    assert "BasicBlock only supports groups=1" in message


def test_a_vit_takes_the_view_size_or_names_the_key_that_sets_its_size(tmp_path, images):
    """timm ViTs are built for any size when the views are not theirs; a torchvision ViT is
    refused before anything is written, naming torchvision's key (image_size, not timm's
    img_size); with a timm ViT's own img_size given, it is built for that size."""
    common = {
        "data": images,
        "method_args": {"hidden_dim": 32, "output_dim": 16},
        "transform_args": {"image_size": 32},
        "batch_size": 8,
        "epochs": 1,
        "num_workers": 0,
        "accelerator": "cpu",
    }
    vit = "timm/vit_tiny_patch16_224"
    result = ssl_core.pretrain(out=tmp_path / "timm", model=vit, **common)
    assert result.steps == 1
    config = json.loads((tmp_path / "timm/config.json").read_text())
    assert config["model_args"] == {"dynamic_img_size": True}

    with pytest.raises(ConfigError) as info:
        ssl_core.pretrain(out=tmp_path / "tv", model="torchvision/vit_b_16", **common)
    message = str(info.value)
    assert "takes only 224×224 images" in message and "views of 32×32" in message
    assert "model_args.image_size" in message and "model_args.img_size" not in message
    assert not (tmp_path / "tv").exists()

    result = ssl_core.pretrain(
        out=tmp_path / "fixed", model=vit, model_args={"img_size": 32}, **common
    )
    assert result.steps == 1
    assert json.loads((tmp_path / "fixed/config.json").read_text())["model_args"] == {
        "img_size": 32
    }


CLI_MISTAKES = [
    # 4. a flag and a KEY=VALUE pair for one setting that disagree
    (["out=a", "--out", "b"], "--out b and out=a disagree: give it once."),
    (["--out", "o", "epochs=2", "--epochs", "3"], "--epochs 3 and epochs=2 disagree"),
    (
        ["--out", "o", "--method-args", "temperature=0.1", "method_args.temperature=0.2"],
        "--method-args temperature=0.1 and method_args.temperature=0.2 disagree",
    ),
    (["--out", "o", "data=elsewhere"], "--data nowhere and data=elsewhere disagree"),
    (["--out", "o", "overwrite=false", "--overwrite"], "--overwrite and overwrite=false disagree"),
    (["--out", "o", "epochs=2", "epochs=3"], "epochs=2 and epochs=3 disagree"),
    (
        ["--out", "o", "--model-args", "groups=1", "--model-args", "groups=2"],
        "--model-args groups=1 and --model-args groups=2 disagree",
    ),
]


@pytest.mark.parametrize(("args", "expected"), CLI_MISTAKES)
def test_cli_disagreeing_settings_are_refused(args, expected):
    result = runner.invoke(
        app, ["pretrain", "--data", "nowhere", "--model", "torchvision/resnet18", *args], env=WIDE
    )
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["out=o", "--out", "o"],
        ["--out", "o", "epochs=2", "--epochs", "2"],
        ["--out", "o", "--method-args", "temperature=0.1", "method_args.temperature=0.10"],
        ["--out", "o", "data=nowhere", "overwrite=true", "--overwrite"],
    ],
)
def test_cli_same_setting_given_twice_alike_is_fine(args):
    result = runner.invoke(
        app, ["pretrain", "--data", "nowhere", "--model", "torchvision/resnet18", *args], env=WIDE
    )
    assert result.exit_code == 2  # the data folder does not exist; that is the only error
    assert "disagree" not in result.output and "nowhere" in result.output


SUBPROCESS_MISTAKES = [
    (
        {"model": "torchvision/resnet18", "model_args": "foo=1"},
        ["does not take model_args 'foo'", "zero_init_residual"],
    ),
    (
        {"model": "timm/resnet18", "model_args": "foo=1"},
        ["does not take model_args 'foo'", "drop_path_rate"],
    ),
    ({"model": "torchvision/resnet18", "batch_size": 1}, ["SimCLR needs at least 2 images"]),
]


@pytest.mark.parametrize(("options", "expected"), SUBPROCESS_MISTAKES)
def test_cli_process_prints_one_message_and_exits_2(options, expected, tmp_path, images):
    args = pretrain_args(out=tmp_path / "run", data=images, epochs=1, num_workers=0, **options)
    result = run_ssl(*args, "--accelerator", "cpu", "transform_args.image_size=32")
    assert result.returncode == 2, result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "run" / "config.json").exists()


def test_cli_epochs_flag_and_pair_disagree_in_a_real_process(tmp_path, images):
    result = run_ssl(
        *pretrain_args(out=tmp_path / "run", data=images, model="torchvision/resnet18", epochs=3),
        "epochs=2",
    )
    assert result.returncode == 2
    assert "--epochs 3 and epochs=2 disagree: give it once." in result.stderr
    assert "Traceback" not in result.stderr


class OldMethod(Method):
    """A 0.1 method: ``build(backbone)`` and no ``check_run``."""

    name = "old-method"
    args_model = StrictArgs
    transform = "simclr"

    def build(self, backbone):
        import torch

        class Module(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.backbone = backbone

            def forward(self, views):
                return sum(self.backbone(v).square().mean() for v in views)

        return Module()


def test_method_without_check_run_still_trains_what_it_is_given(tmp_path, images):
    with registered(OldMethod):
        result = ssl_core.pretrain(
            out=tmp_path / "run", data=images, **small_run(method="old-method", batch_size=1)
        )
    assert result.steps == 2 * 8


SCRIPT = """
import ssl_core

ssl_core.pretrain(
    out={out!r}, data={data!r}, model="torchvision/resnet18", transform_args={{"image_size": 32}},
    batch_size=4, epochs=1, devices=2, accelerator="cpu", num_workers=0,
)
"""


def test_script_without_main_guard_gets_one_message(tmp_path, images):
    """devices=2 spawns processes that import the script again: each stops at once, quietly,
    and the script gets one message showing the guard instead of pages of tracebacks."""
    script = tmp_path / "train_unguarded.py"
    script.write_text(textwrap.dedent(SCRIPT.format(out=str(tmp_path / "run"), data=str(images))))
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert 'Put the call under `if __name__ == "__main__":`' in output, output
    assert "train_unguarded.py calls pretrain while it is imported" in output
    assert "Traceback" not in output
    assert len([line for line in output.splitlines() if line.strip()]) < 10, output
    assert not (tmp_path / "run" / "config.json").exists()
