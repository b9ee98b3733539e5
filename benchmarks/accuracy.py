"""Does bf16 cost accuracy? Pretrain twice with the same seed, data and epochs, in bf16-mixed
and in float32, and compare kNN top-1 of the exports on held-out images.

--dataset cifar: the CIFAR-10 subset from ../shared/data; the first 800 images of each
class are pretrained on and form the kNN bank, the last 200 of each class are the queries.
--dataset cifar-all: all 10,000 CIFAR-10 images are pretrained on; kNN by 5-fold
cross-validation over them (each image a query once, against the other 8,000; labels are
never seen by pretraining), for five times the queries of --dataset cifar.
--dataset shapes: the demo's drawn shapes (4 classes), which a short run does learn:
pretrain and bank on 512 per class, queries from 500 per class drawn with another seed.
kNN: k=20, cosine, temperature 0.1.
Each seed pretrains once per precision; the report gives every pair, the mean of each
precision and the mean paired difference with its standard error, because one pair alone
differs by as much as two seeds of the same precision do.
Run: `python benchmarks/accuracy.py --dataset shapes --epochs 40 --seeds 0 1 2 3 [--write]`.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision

import ssl_core
from ssl_core.data.decode import decode_file
from ssl_core.eval.knn import embed_images, knn_accuracy, knn_of_backbone

KNN = {"k": 20, "temperature": 0.1}

ROOT = Path(__file__).resolve().parent.parent
CIFAR = ROOT.parent / "shared" / "data" / "cifar10-train-10k"


@dataclass
class KnnData:
    """Labelled images for kNN: a bank and held-out queries, or (``queries`` None) one set
    evaluated by ``folds``-fold cross-validation."""

    bank: list[torch.Tensor]
    bank_labels: torch.Tensor
    queries: list[torch.Tensor] | None = None
    query_labels: torch.Tensor | None = None
    folds: int = 5

    def describe(self) -> str:
        if self.queries is not None:
            return f"on {len(self.queries)} held-out images"
        return f"by {self.folds}-fold cross-validation over {len(self.bank)} images"


def all_cifar(train_dir: Path, per_class: int | None = None) -> KnnData:
    """Every CIFAR image (or the first ``per_class`` of each class, for a smoke run)."""
    images, labels = [], []
    for label, class_dir in enumerate(sorted(p for p in CIFAR.iterdir() if p.is_dir())):
        (train_dir / class_dir.name).mkdir(parents=True)
        for path in sorted(class_dir.glob("*.jpg"))[:per_class]:
            (train_dir / class_dir.name / path.name).symlink_to(path)
            images.append(decode_file(path))
            labels.append(label)
    return KnnData(images, torch.tensor(labels))


def split(train_dir: Path) -> KnnData:
    bank, bank_labels, queries, query_labels = [], [], [], []
    for label, class_dir in enumerate(sorted(p for p in CIFAR.iterdir() if p.is_dir())):
        (train_dir / class_dir.name).mkdir(parents=True)
        for i, path in enumerate(sorted(class_dir.glob("*.jpg"))):
            if i < 800:
                (train_dir / class_dir.name / path.name).symlink_to(path)
                bank.append(decode_file(path))
                bank_labels.append(label)
            else:
                queries.append(decode_file(path))
                query_labels.append(label)
    return KnnData(bank, torch.tensor(bank_labels), queries, torch.tensor(query_labels))


SETTINGS = {
    "cifar": {"batch_size": 256, "transform_args": {"image_size": 32}},
    "cifar-all": {"batch_size": 256, "transform_args": {"image_size": 32}},
    # the demo's settings: drawn shapes survive milder crops and no blur better
    "shapes": {
        "batch_size": 128,
        "transform_args": {
            "image_size": 32,
            "random_resize": {"min_scale": 0.3},
            "gaussian_blur": {"prob": 0},
        },
    },
}


def shapes_split(root: Path) -> KnnData:
    from ssl_core.demo import make_example_images

    train = make_example_images(root / "train", 512, seed=0)
    held_out = make_example_images(root / "held_out", 500, seed=1)
    bank = [decode_file(p) for p, _ in train]
    queries = [decode_file(p) for p, _ in held_out]
    return KnnData(
        bank,
        torch.tensor([label for _, label in train]),
        queries,
        torch.tensor([label for _, label in held_out]),
    )


def load_resnet18(weights: Path | None) -> torch.nn.Module:
    """torchvision's ResNet-18 without its classifier, from an exported state_dict (with or
    without ``fc``). Any other key missing or extra is an error: a silently skipped load
    would measure the random initialisation."""
    model = torchvision.models.resnet18()
    if weights is not None:
        result = model.load_state_dict(torch.load(weights, weights_only=True), strict=False)
        wrong = [k for k in result.missing_keys if not k.startswith("fc.")]
        if wrong or result.unexpected_keys:
            raise ValueError(
                f"{weights} is no torchvision ResNet-18 state_dict: missing {wrong[:3]}, "
                f"unexpected {result.unexpected_keys[:3]}"
            )
    model.fc = torch.nn.Identity()
    return model


def knn_of(weights: Path | None, data: KnnData) -> float:
    model = load_resnet18(weights)
    if data.queries is not None:
        assert data.query_labels is not None
        return knn_of_backbone(
            model, data.bank, data.bank_labels, data.queries, data.query_labels, **KNN
        )
    features = embed_images(model, data.bank)
    fold = torch.arange(len(features)) % data.folds
    correct = 0.0
    for f in range(data.folds):
        query, bank = fold == f, fold != f
        accuracy = knn_accuracy(
            features[bank], data.bank_labels[bank], features[query], data.bank_labels[query], **KNN
        )
        correct += accuracy * int(query.sum())
    return correct / len(features)


def pretrain_once(tmp: Path, dataset: str, epochs: int, precision: str, seed: int):
    start = time.perf_counter()
    result = ssl_core.pretrain(
        out=tmp / f"{precision}-seed{seed}",
        data=tmp / "train",
        model="torchvision/resnet18",
        epochs=epochs,
        **SETTINGS[dataset],
        precision=precision,
        seed=seed,
    )
    return result, time.perf_counter() - start


def mean_and_error(values: list[float]) -> tuple[float, float]:
    """The mean and its standard error (0 for a single value)."""
    mean = statistics.fmean(values)
    error = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
    return mean, error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--dataset", choices=sorted(SETTINGS), default="cifar")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--write", action="store_true")
    options = parser.parse_args()
    rows = []
    accuracies: dict[str, list[float]] = {"bf16-mixed": [], "32-true": []}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        loaders = {"cifar": split, "cifar-all": all_cifar}
        if options.dataset in loaders:
            data = loaders[options.dataset](tmp / "train")
        else:
            data = shapes_split(tmp)
        torch.manual_seed(0)
        random_init = knn_of(None, data)
        print(f"random initialisation: kNN top-1 {random_init:.1%}", flush=True)
        for seed in options.seeds:
            for precision in accuracies:
                result, seconds = pretrain_once(
                    tmp, options.dataset, options.epochs, precision, seed
                )
                accuracy = knn_of(result.exported_model, data)
                accuracies[precision].append(accuracy)
                rows.append((seed, precision, result.images_per_second, accuracy, seconds))
                print(f"seed {seed} {precision}: kNN top-1 {accuracy:.1%} ({seconds:.0f} s)")
    pairs = zip(accuracies["bf16-mixed"], accuracies["32-true"], strict=True)
    differences = [bf16 - fp32 for bf16, fp32 in pairs]
    seeds_text = " ".join(str(seed) for seed in options.seeds)
    lines = [
        f"### bf16 vs float32 accuracy, {datetime.date.today().isoformat()}",
        "",
        f"`python benchmarks/accuracy.py --dataset {options.dataset} --epochs "
        f"{options.epochs} --seeds {seeds_text}`: ResNet-18, SimCLR, 32 px, "
        f"{SETTINGS[options.dataset]}; kNN top-1 (k=20) {data.describe()}. "
        f"Random initialisation: {random_init:.1%}.",
        "",
        "| seed | precision | loop img/s | kNN top-1 | seconds |",
        "| --- | --- | --- | --- | --- |",
    ]
    for seed, precision, ips, accuracy, seconds in rows:
        lines.append(f"| {seed} | {precision} | {ips:.0f} | {accuracy:.1%} | {seconds:.0f} |")
    lines.append("")
    for precision, values in accuracies.items():
        mean, error = mean_and_error(values)
        lines.append(f"- {precision}: mean kNN top-1 {mean:.1%} ± {error:.1%} (standard error)")
    mean, error = mean_and_error(differences)
    lines.append(
        f"- bf16 − float32, same seed: mean {mean * 100:+.2f} ± {error * 100:.2f} points "
        f"(largest single gap {max(abs(d) for d in differences) * 100:.1f})"
    )
    report = "\n".join(lines) + "\n"
    print(report)
    if options.write:
        from bench import prepend_results

        prepend_results(report)


if __name__ == "__main__":
    main()
