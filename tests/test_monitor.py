"""The online kNN monitor: with val_data, the exported backbone's kNN accuracy is logged
every few epochs, equal to what `ssl evaluate --train-data VAL` says of the same weights,
the best checkpoint and export are kept, and resuming changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision

import ssl_core
from conftest import run_ssl
from lifecycle_support import make_images
from ssl_core.testing import killed_resumed_and_straight
from ssl_core.train.monitor import every_epochs

COMMON = {
    "model": "torchvision/resnet18",
    "method_args": {"hidden_dim": 64, "output_dim": 16},
    "transform_args": {"image_size": 32},
    "batch_size": 8,
    "num_workers": 0,
    "accelerator": "cpu",
    "precision": "32-true",
}


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """24 training images and a labelled folder of 20 (two classes)."""
    return make_images(tmp_path_factory.mktemp("train"), count=24, side=32)


@pytest.fixture(scope="module")
def val(tmp_path_factory) -> Path:
    return make_images(tmp_path_factory.mktemp("val"), count=20, side=32)


def rows_of(out: Path) -> tuple[list[dict], list[dict]]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "loss" in r], [r for r in rows if "knn_top1" in r]


def test_auto_keeps_evaluation_within_five_percent_of_training():
    # SimCLR at 32 px: a training image is 2 views x 3 passes; 1000 of 10000 -> 1.7 %
    assert every_epochs(1000, 10000, [(32, 32)] * 2, (32, 32)) == 1
    # 1000 queries against 100 training images: 1000 / (0.05 * 600) = 33.3 -> 34 epochs
    assert every_epochs(1000, 100, [(32, 32)] * 2, (32, 32)) == 34
    # DINO's many views make training dearer, evaluations relatively cheaper
    dino = [(64, 64)] * 2 + [(32, 32)] * 6
    assert every_epochs(1000, 100, dino, (64, 64)) == 20


def test_logs_knn_keeps_the_best_and_agrees_with_ssl_evaluate(images, val, tmp_path):
    out = tmp_path / "run"
    ssl_core.pretrain(out=out, data=images, epochs=3, val_data=val, val_every_epochs=2, **COMMON)
    steps, knn = rows_of(out)
    per_epoch = 24 // 8
    # every 2 epochs, and after the last; each at its epoch's last step
    assert [(r["epoch"], r["step"]) for r in knn] == [(2, 2 * per_epoch), (3, 3 * per_epoch)]
    assert [r["step"] for r in steps] == list(range(1, 3 * per_epoch + 1))
    assert all(set(r) == {"step", "epoch", "knn_top1"} for r in knn)  # 2 classes: no top-5
    log = (out / "train.log").read_text()
    assert "kNN monitor: 20 images of 2 classes in val_data (4 held out as queries" in log
    assert f"kNN on val_data after epoch 3: top-1 {knn[-1]['knn_top1']:.1%}" in log

    # The figure of the last epoch is `ssl evaluate`'s for the exported backbone; the best
    # checkpoint's export is the epoch with the highest figure (the first on a tie).
    last = ssl_core.evaluate(out, train_data=val, progress=False)
    assert last.pretrained.knn_top1 == pytest.approx(knn[-1]["knn_top1"])
    best = ssl_core.evaluate(out, train_data=val, checkpoint="best", progress=False)
    assert best.pretrained.knn_top1 == pytest.approx(max(r["knn_top1"] for r in knn))
    exported = torch.load(out / "exported_models/exported_best.pt", weights_only=True)
    missing = torchvision.models.resnet18().load_state_dict(exported, strict=False).missing_keys
    assert set(missing) == {"fc.weight", "fc.bias"}
    saved = torch.load(out / "checkpoints/best.ckpt", weights_only=True)
    assert saved["best_knn_top1"] == max(r["knn_top1"] for r in knn)


def test_sigkill_then_resume_keeps_the_figures_and_the_training(images, val, tmp_path):
    options = [
        "pretrain",
        f"data={images}",
        f"val_data={val}",
        "val_every_epochs=1",
        "model=torchvision/resnet18",
        "method_args.hidden_dim=64",
        "method_args.output_dim=16",
        "transform_args.image_size=32",
        "batch_size=8",
        "epochs=3",
        "num_workers=0",
        "accelerator=cpu",
        "precision=32-true",
    ]
    final, expected, saved_step = killed_resumed_and_straight(options, tmp_path, 5)
    assert 0 < saved_step < 9
    for key, value in expected["model"].items():  # evaluating never changed the training
        assert torch.equal(final["model"][key], value), key
    assert final["best_knn_top1"] == expected["best_knn_top1"] is not None
    _, killed = rows_of(tmp_path / "killed")
    _, straight = rows_of(tmp_path / "straight")
    assert killed == straight  # each epoch's figure once, the same


def test_two_processes_gather_the_features_and_agree_with_ssl_evaluate(images, val, tmp_path):
    out = tmp_path / "two"
    done = run_ssl(
        "pretrain",
        f"out={out}",
        f"data={images}",
        f"val_data={val}",
        "model=torchvision/resnet18",
        "method_args.hidden_dim=64",
        "method_args.output_dim=16",
        "transform_args.image_size=32",
        "batch_size=8",
        "epochs=1",
        "devices=2",
        "num_workers=0",
        "accelerator=cpu",
        "precision=32-true",
    )
    assert done.returncode == 0, done.stderr
    _, knn = rows_of(out)
    assert len(knn) == 1
    result = ssl_core.evaluate(out, train_data=val, progress=False)
    assert result.pretrained.knn_top1 == pytest.approx(knn[0]["knn_top1"])


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda root: root / "missing", "does not exist"),
        (
            lambda root: make_images(root / "flat", count=2, side=32) / "class0",
            "no class subfolders",
        ),
    ],
    ids=["missing", "unlabelled"],
)
def test_bad_val_data_is_refused_before_anything_is_written(images, tmp_path, make, message):
    out = tmp_path / "run"
    with pytest.raises(ssl_core.ConfigError, match=message):
        ssl_core.pretrain(out=out, data=images, epochs=1, val_data=make(tmp_path), **COMMON)
    assert not out.exists()
