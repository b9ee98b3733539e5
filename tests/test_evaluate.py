"""``evaluate``: kNN and linear probe against references, and on real runs (SimCLR, DINO)
loaded from a run directory, a checkpoint and an exported file; ``ssl evaluate``."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import ssl_core
from conftest import WIDE
from ssl_core.cli import app
from ssl_core.eval.features import LabelledFiles, held_out_split
from ssl_core.eval.knn import knn_topk, knn_votes
from ssl_core.eval.linear import linear_probe
from ssl_core.eval.loading import load_backbone
from use_support import CLASSES, make_labelled_images, tiny_run
from use_support import simclr_run as shared_simclr_run

runner = CliRunner()


# --- kNN and linear probe on synthetic features ---------------------------------------------


def naive_ranking(bank, labels, query, k, temperature, num_classes):
    """Classes by weighted vote of the k most cosine-similar bank rows, a plain loop."""

    def unit(v):
        n = math.sqrt(sum(x * x for x in v))
        return [x / n for x in v]

    q = unit(query)
    sims = sorted(
        ((sum(a * b for a, b in zip(q, unit(v), strict=True)), i) for i, v in enumerate(bank)),
        key=lambda pair: (-pair[0], pair[1]),
    )[:k]
    votes = [0.0] * num_classes
    for sim, i in sims:
        votes[labels[i]] += math.exp(sim / temperature)
    return sorted(range(num_classes), key=lambda c: (-votes[c], c))


@pytest.mark.parametrize(("k", "temperature"), [(7, 0.2), (20, 0.1), (1, 0.5)])
def test_knn_top1_and_top5_match_a_brute_force_loop(k, temperature):
    generator = torch.Generator().manual_seed(k)
    num_classes = 9
    bank = torch.randn(70, 6, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, num_classes, (70,), generator=generator)
    queries = torch.randn(40, 6, generator=generator, dtype=torch.float64)
    query_labels = torch.randint(0, num_classes, (40,), generator=generator)
    rankings = [
        naive_ranking(bank.tolist(), labels.tolist(), q, k, temperature, num_classes)
        for q in queries.tolist()
    ]
    expected = [
        sum(y in r[:top] for y, r in zip(query_labels.tolist(), rankings, strict=True)) / 40
        for top in (1, 5)
    ]
    got = knn_topk(bank, labels, queries, query_labels, num_classes, k, temperature)
    assert got == pytest.approx(expected, abs=1e-6)  # float32 means
    assert 0 < expected[0] < expected[1] < 1  # the data can tell a wrong top-1 from top-5
    # Queries in slices of a few similarities give the same votes as all at once.
    sliced = knn_votes(bank, labels, queries, num_classes, k, temperature, chunk=100)
    torch.testing.assert_close(
        sliced, knn_votes(bank, labels, queries, num_classes, k, temperature)
    )


def separable(count: int, num_classes: int, dim: int, seed: int):
    """Features whose classes a hyperplane separates: a class's mean plus small noise."""
    generator = torch.Generator().manual_seed(seed)
    centers = torch.randn(num_classes, dim, generator=torch.Generator().manual_seed(0)) * 3
    labels = torch.arange(count) % num_classes
    return centers[labels] + 0.3 * torch.randn(count, dim, generator=generator), labels


def test_linear_probe_separates_linearly_separable_features():
    train, train_labels = separable(300, 8, 32, seed=1)
    val, val_labels = separable(120, 8, 32, seed=2)
    top1, top5 = linear_probe(train, train_labels, val, val_labels, 8)
    assert top1 == 1.0 and top5 == 1.0
    # The same features with labels that carry nothing: near chance (1/8), not near 1.
    shuffled = train_labels[torch.randperm(300, generator=torch.Generator().manual_seed(3))]
    top1, _ = linear_probe(train, shuffled, val, val_labels, 8)
    assert top1 < 0.5


def test_held_out_split_is_stratified_and_seeded():
    files = [Path(f"{c}/{i}.png") for c in "abc" for i in range(10 if c != "c" else 1)]
    data = LabelledFiles(files, [ord(f.parent.name) - ord("a") for f in files], ["a", "b", "c"])
    train, val = held_out_split(data, 0.2, seed=0)
    assert sorted(train.files + val.files) == sorted(files)
    assert [val.labels.count(c) for c in range(3)] == [2, 2, 0]  # a lone image stays to train
    again, _ = held_out_split(data, 0.2, seed=0)
    other, _ = held_out_split(data, 0.2, seed=1)
    assert again.files == train.files and other.files != train.files


# --- real runs -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> dict[str, Path]:
    """Four class folders: a training set, a separate held-out set, and images to pretrain
    on."""
    root = tmp_path_factory.mktemp("labelled")
    make_labelled_images(root / "train", per_class=10, seed=0)
    make_labelled_images(root / "val", per_class=4, seed=1)
    make_labelled_images(root / "pretrain", per_class=4, seed=2)  # one step of batch 16
    return {"train": root / "train", "val": root / "val", "pretrain": root / "pretrain"}


@pytest.fixture(scope="module")
def simclr_run() -> Path:
    return shared_simclr_run()


@pytest.fixture(scope="module")
def dino_run(labelled, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "dino"
    return tiny_run(
        out,
        labelled["pretrain"],
        "dino",
        method_args={"hidden_dim": 64, "bottleneck_dim": 16, "output_dim": 32},
        transform_args={"num_local_views": 2},
    )


def features_of(network, folder: Path, classes: list[str]):
    """Features of every image under ``folder``, computed here without the library's
    pipeline (the images are already 32 px: the evaluation crop keeps them whole)."""
    from torchvision.io import decode_image

    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    files = sorted(folder.glob("*/*.png"))
    images = torch.stack([decode_image(str(f)) for f in files]).float() / 255
    with torch.no_grad():
        features = network.eval()((images - mean) / std)
    return features, torch.tensor([classes.index(f.parent.name) for f in files])


@pytest.fixture(scope="module")
def simclr_result(simclr_run, labelled):
    return ssl_core.evaluate(simclr_run, labelled["train"], labelled["val"], progress=False)


def test_evaluate_simclr_run_directory_matches_a_direct_computation(
    simclr_run, simclr_result, labelled
):
    result = simclr_result
    assert result.weights == simclr_run / "checkpoints" / "last.ckpt"
    assert (result.method, result.model) == ("simclr", "torchvision/resnet18")
    assert result.classes == list(CLASSES)
    assert (result.train_images, result.val_images) == (40, 16)
    assert result.image_size == (32, 32) and result.skipped == []
    assert result.pretrained.knn_top5 is None  # four classes: top-5 says nothing
    loaded = load_backbone(simclr_run)
    for network, scores in (
        (loaded.network, result.pretrained),
        (loaded.random_init(), result.random_init),
    ):
        bank, bank_labels = features_of(network, labelled["train"], result.classes)
        queries, query_labels = features_of(network, labelled["val"], result.classes)
        (top1,) = knn_topk(bank, bank_labels, queries, query_labels, 4, 20, 0.1, ks=(1,))
        # Channels-last convolutions change float32 sums a little: one of the 16 queries
        # may flip on a near tie.
        assert scores.knn_top1 == pytest.approx(top1, abs=1 / 16)
        (top1,) = linear_probe(bank, bank_labels, queries, query_labels, 4, ks=(1,))
        assert scores.linear_top1 == pytest.approx(top1, abs=1 / 16)
    assert result.gain.knn_top1 == pytest.approx(
        result.pretrained.knn_top1 - result.random_init.knn_top1
    )


def test_random_init_is_where_the_runs_training_started(simclr_run):
    from ssl_core.run_info import RunInfo
    from ssl_core.train.model import build_model

    loaded = load_backbone(simclr_run)
    first, again, other = loaded.random_init(), loaded.random_init(), loaded.random_init(seed=5)
    # The training code's own builder, with the run's configuration: its starting weights.
    start = build_model(loaded.resolved, RunInfo(1, 1, 16), torch.device("cpu")).module
    key = "model.conv1.weight"
    assert torch.equal(first.state_dict()[key], start.backbone.state_dict()[key])
    assert torch.equal(first.state_dict()[key], again.state_dict()[key])
    assert not torch.equal(first.state_dict()[key], other.state_dict()[key])
    assert not torch.equal(first.state_dict()[key], loaded.network.state_dict()[key])


def test_an_exported_file_gives_the_run_directory_result(simclr_run, simclr_result, labelled):
    path = simclr_run / "exported_models" / "exported_last.pt"
    result = ssl_core.evaluate(path, labelled["train"], labelled["val"], progress=False)
    assert result.weights == path
    assert result.pretrained == simclr_result.pretrained
    assert result.random_init == simclr_result.random_init


def test_run_directory_checkpoint_and_export_hold_the_same_backbone(simclr_run):
    loaded = [
        load_backbone(path)
        for path in (
            simclr_run,
            simclr_run / "checkpoints" / "last.ckpt",
            simclr_run / "exported_models" / "exported_last.pt",
        )
    ]
    assert [item.kind for item in loaded] == ["checkpoint", "checkpoint", "export"]
    states = [item.network.state_dict() for item in loaded]
    assert states[0].keys() == states[1].keys() == states[2].keys()
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]) and torch.equal(
            states[0][key], states[2][key]
        ), key


def test_dino_exports_and_evaluates_the_teacher(dino_run, labelled):
    saved = torch.load(dino_run / "checkpoints" / "last.ckpt", weights_only=True)["model"]
    loaded = load_backbone(dino_run)
    state = loaded.network.state_dict()
    key = "model.conv1.weight"
    torch.testing.assert_close(state[key], saved[f"teacher_backbone.{key}"], rtol=0, atol=0)
    assert not torch.equal(state[key], saved[f"backbone.{key}"])  # the student moved apart
    exported = load_backbone(dino_run / "exported_models" / "exported_last.pt")
    assert torch.equal(exported.network.state_dict()[key], state[key])

    result = runner.invoke(
        app, ["evaluate", str(dino_run), "--train-data", str(labelled["train"]), "--json"], env=WIDE
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["method"] == "dino" and data["weights"].endswith("last.ckpt")
    assert set(data["pretrained"]) == {"knn_top1", "knn_top5", "linear_top1", "linear_top5"}
    assert data["gain"]["knn_top1"] == pytest.approx(
        data["pretrained"]["knn_top1"] - data["random_init"]["knn_top1"]
    )


def test_ssl_evaluate_on_a_checkpoint_skips_an_unreadable_file(simclr_run, labelled, tmp_path):
    train = tmp_path / "train"
    shutil.copytree(labelled["train"], train)
    (train / "blue" / "broken.png").write_bytes(b"not an image")
    checkpoint = simclr_run / "checkpoints" / "last.ckpt"
    result = runner.invoke(
        app, ["evaluate", str(checkpoint), "--train-data", str(train), "--k", "5"], env=WIDE
    )
    assert result.exit_code == 0, result.output
    for text in ("random init", "pretrained", "gain (points)", "kNN top-1", "linear top-1"):
        assert text in result.stdout
    counts = re.search(r"(\d+) training and (\d+) held-out images \(20% of each", result.stdout)
    assert counts and int(counts[1]) + int(counts[2]) == 40, result.stdout
    assert "k=5, T=0.1" in result.stdout
    assert "Skipped 1 unreadable image file(s): " in result.stderr
    assert "broken.png (not an image" in result.stderr


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing", "does not exist"),
        ("plain_dir", "has no config.json"),
        ("text_file", "Cannot read"),
        ("lone_export", "config.json"),
        ("best", "checkpoints/best.ckpt"),
        ("unlabelled", "no class subfolders"),
        ("val_class", "that the training images lack"),
        ("k", "k must be at least 1"),
    ],
)
def test_mistakes_end_in_one_message_and_exit_2(case, expected, simclr_run, labelled, tmp_path):
    run, train, extra = str(simclr_run), str(labelled["train"]), []
    if case == "missing":
        run = str(tmp_path / "nowhere")
    elif case == "plain_dir":
        run = str(tmp_path)
    elif case == "text_file":
        (tmp_path / "weights.pt").write_text("hello")
        run = str(tmp_path / "weights.pt")
    elif case == "lone_export":
        run = str(shutil.copy(simclr_run / "exported_models" / "exported_last.pt", tmp_path))
    elif case == "best":
        extra = ["--checkpoint", "best"]
    elif case == "unlabelled":
        shutil.copy(next(labelled["train"].glob("blue/*.png")), tmp_path)
        train = str(tmp_path)
    elif case == "val_class":
        (tmp_path / "hexagon").mkdir()
        extra = ["--val-data", str(tmp_path)]
    elif case == "k":
        extra = ["--k", "0"]
    result = runner.invoke(app, ["evaluate", run, "--train-data", train, *extra], env=WIDE)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error:") and expected in result.stderr, result.stderr
    assert "Traceback" not in result.output
