"""image_size: a size the transform cannot produce is one message before anything runs, and
the default "auto" takes the size from the images (capped at the method's reference size,
or the backbone's one fixed size), says so in train.log, and writes the number to
config.json so that a resume compares equal."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

import ssl_core
from conftest import WIDE, pretrain_args, run_ssl
from ssl_core import ConfigError, InputSize
from ssl_core.cli import app
from ssl_core.config import resolve
from ssl_core.testing import sigkill_during_run
from ssl_core.train.data import prepare_data
from ssl_core.train.image_size import choose_image_size
from ssl_simclr import SimCLRTransformArgs

runner = CliRunner()


def make_images(folder: Path, sizes: list[tuple[int, int]], start: int = 0) -> Path:
    """One PNG of seeded noise per (width, height)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(start)
    for i, (width, height) in enumerate(sizes, start):
        pixels = bytes(rng.randrange(256) for _ in range(width * height * 3))
        Image.frombytes("RGB", (width, height), pixels).save(folder / f"{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def cifar_sized(tmp_path_factory) -> Path:
    return make_images(tmp_path_factory.mktemp("cifar-sized"), [(32, 32)] * 8)


def small_run(out: Path, data: Path, **options: object) -> dict[str, object]:
    return {
        "out": out,
        "data": data,
        "model": "torchvision/resnet18",
        "epochs": 1,
        "batch_size": 4,
        "num_workers": 0,
        "accelerator": "cpu",
        "precision": "32-true",
        "devices": 1,
        **options,
    }


def chosen(tmp_path: Path, data: Path, **options: object) -> tuple[tuple[int, int], list[str]]:
    """The image size a run would train with, and its log notes; nothing is trained."""
    prepared = prepare_data(resolve(small_run(tmp_path / "run", data, **options)), 1)
    assert prepared.resolved is not None
    return prepared.resolved.transform_args.image_size, prepared.notes


# --- sizes the transform cannot produce: one message, exit code 2, before any work ---

TOO_SMALL = "each side must be at least 2 px"
UNPRODUCIBLE = [
    pytest.param(["image_size=0"], TOO_SMALL, id="zero"),
    pytest.param(["image_size=1"], TOO_SMALL, id="one"),
    pytest.param(["image_size=-32"], TOO_SMALL, id="negative"),
    pytest.param(["image_size=64,1"], TOO_SMALL, id="one-side-too-small"),
    pytest.param(
        ["image_size=abc"], "give a size in pixels such as 32, height,width, or auto", id="text"
    ),
    pytest.param(
        ["image_size=8", "gaussian_blur.kernel_size=23"],
        "gaussian_blur.kernel_size 23 pads each view by 11 px, which needs views of at least 12 px",
        id="blur-kernel-larger-than-the-view",
    ),
    pytest.param(
        ["gaussian_blur.kernel_size=-3"], "greater than or equal to 1", id="negative-blur-kernel"
    ),
]


@pytest.mark.parametrize(("transform_args", "message"), UNPRODUCIBLE)
def test_cli_refuses_an_image_size_the_transform_cannot_produce(
    transform_args, message, cifar_sized, tmp_path
):
    options = [arg for value in transform_args for arg in ("--transform-args", value)]
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        ["pretrain", "--out", str(out), "--data", str(cifar_sized)]
        + ["--model", "torchvision/resnet18", *options],
        env=WIDE,
    )
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and message in result.output, result.output
    assert "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize("image_size", [0, 1, -3, (1, 64), "abc"])
def test_api_refuses_an_image_size_the_transform_cannot_produce(image_size, cifar_sized, tmp_path):
    with pytest.raises(ConfigError, match="transform_args.image_size"):
        ssl_core.pretrain(
            **small_run(tmp_path / "run", cifar_sized, transform_args={"image_size": image_size})
        )
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("given", "expected"),
    [("auto", "auto"), (" AUTO ", "auto"), (2, (2, 2)), ("48", (48, 48)), ((40, 64), (40, 64))],
)
def test_accepted_image_sizes(given, expected):
    assert SimCLRTransformArgs(image_size=given).image_size == expected


def test_auto_is_the_default_and_must_be_resolved_before_building_views():
    args = SimCLRTransformArgs()
    assert args.image_size == "auto"
    with pytest.raises(ValueError, match="chosen from the images when a run starts"):
        args.view_size  # noqa: B018


# --- the "auto" rule ---

RULE = [
    pytest.param([(32, 32)] * 8, InputSize(), (32, 32), "is 32 px", id="cifar"),
    pytest.param(
        [(40, 60), (48, 48), (64, 80), (72, 50), (80, 90), (96, 96), (100, 120), (120, 100)],
        InputSize(),
        (72, 72),  # shorter sides 40 48 50 64 80 96 100 100: median 72, a multiple of 8
        "is 72 px",
        id="mixed-median",
    ),
    pytest.param(
        [(60, 70), (100, 90), (90, 200)],
        InputSize(),
        (88, 88),
        "rounded down to a multiple of 8",
        id="rounded",
    ),
    pytest.param(
        [(300, 400)] * 4,
        InputSize(),
        (224, 224),
        "above the method's reference size 224",
        id="capped",
    ),
    pytest.param([(20, 24)] * 4, InputSize(), (32, 32), "raised to 32", id="raised-to-the-minimum"),
    pytest.param(
        [(64, 64)] * 4, InputSize(multiple=14), (56, 56), "multiple of 14", id="whole-patches"
    ),
    pytest.param(
        [(32, 32)] * 4,
        InputSize(fixed=(224, 224)),
        (224, 224),
        "takes only 224×224",
        id="fixed-size-vit",
    ),
]


@pytest.mark.parametrize(("sizes", "takes", "expected", "reason"), RULE)
def test_auto_rule(sizes, takes, expected, reason):
    size, why = choose_image_size(sizes, 224, takes, "the model")
    assert size == expected and reason in why, why


def test_auto_on_cifar_sized_images_trains_at_32_and_says_so(cifar_sized, tmp_path):
    result = ssl_core.pretrain(**small_run(tmp_path / "run", cifar_sized))
    assert result.steps == 2
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["transform_args"]["image_size"] == [32, 32]
    log = (tmp_path / "run" / "train.log").read_text()
    assert (
        "image_size auto → 32×32 (median shorter side of 8 sampled images is 32 px; "
        "the method's reference size is 224" in log
    )


def test_auto_on_mixed_sizes_takes_the_median_shorter_side(tmp_path):
    # shorter sides 40 48 50 64 80 96 100 100: median (64 + 80) / 2 = 72
    data = make_images(
        tmp_path / "mixed",
        [(60, 40), (48, 48), (64, 80), (50, 72), (90, 80), (96, 96), (100, 120), (120, 100)],
    )
    size, notes = chosen(tmp_path, data)
    assert size == (72, 72)
    assert "median shorter side of 8 sampled images is 72 px" in notes[0]


def test_auto_on_large_images_is_capped_at_the_reference_size(tmp_path):
    size, notes = chosen(tmp_path, make_images(tmp_path / "large", [(400, 300)] * 4))
    assert size == (224, 224)
    assert "is 300 px, above the method's reference size 224" in notes[0]


def test_auto_on_a_fixed_size_vit_takes_its_size(cifar_sized, tmp_path):
    size, notes = chosen(
        tmp_path, cifar_sized, model="torchvision/vit_b_32", model_args={"image_size": 64}
    )
    assert size == (64, 64)
    assert "torchvision/vit_b_32 takes only 64×64 images" in notes[0]


def test_an_explicit_image_size_is_used_as_given(cifar_sized, tmp_path):
    size, notes = chosen(tmp_path, cifar_sized, transform_args={"image_size": 48})
    assert size == (48, 48) and notes == []


def test_resuming_an_auto_run_keeps_its_size_when_the_images_changed(tmp_path):
    data = make_images(tmp_path / "data", [(32, 32)] * 16)
    out = tmp_path / "run"
    command = pretrain_args(
        out=out,
        data=data,
        model="torchvision/resnet18",
        epochs=4,
        batch_size=4,
        num_workers=0,
        accelerator="cpu",
        precision="32-true",
    )
    sigkill_during_run(command, out / "metrics.jsonl", after_lines=6)  # in epoch 2 of 4
    config = json.loads((out / "config.json").read_text())
    assert config["transform_args"]["image_size"] == [32, 32]
    make_images(data, [(64, 64)] * 16)  # the same files, larger: a new run would take 64
    assert chosen(tmp_path / "new", data)[0] == (64, 64)

    resumed = run_ssl(*command, "resume=true")
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming at step" in resumed.stdout
    assert "image_size auto → 32×32 (as in the run being resumed" in resumed.stdout


def test_every_process_trains_with_the_size_chosen_once(cifar_sized, tmp_path):
    """devices=2: the spawned processes get the resolved size (an unresolved "auto"
    could not build the views)."""
    result = ssl_core.pretrain(**small_run(tmp_path / "run", cifar_sized, devices=2))
    assert result.steps == 2
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["transform_args"]["image_size"] == [32, 32]
