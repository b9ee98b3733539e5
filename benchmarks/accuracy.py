"""Does bf16 cost accuracy? Pretrain twice with the same seed, data and epochs, in bf16-mixed
and in float32, and compare kNN top-1 of the exports on held-out images.

--dataset cifar: the CIFAR-10 subset from ../shared/data; the first 800 images of each
class are pretrained on and form the kNN bank, the last 200 of each class are the queries.
--dataset shapes: the demo's drawn shapes (4 classes), which a short run does learn:
pretrain and bank on 512 per class, queries from 150 per class drawn with another seed.
kNN: k=20, cosine, temperature 0.1.
Run: `python benchmarks/accuracy.py --dataset shapes --epochs 30 [--write]`.
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time
from pathlib import Path

import torch
import torchvision

import ssl_core
from ssl_core.data.decode import decode_file
from ssl_core.eval.knn import knn_of_backbone

ROOT = Path(__file__).resolve().parent.parent
CIFAR = ROOT.parent / "shared" / "data" / "cifar10-train-10k"


def split(train_dir: Path):
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
    return bank, torch.tensor(bank_labels), queries, torch.tensor(query_labels)


SETTINGS = {
    "cifar": {"batch_size": 256, "transform_args": {"image_size": 32}},
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


def shapes_split(root: Path):
    from ssl_core.demo import make_example_images

    train = make_example_images(root / "train", 512, seed=0)
    held_out = make_example_images(root / "held_out", 150, seed=1)
    bank = [decode_file(p) for p, _ in train]
    queries = [decode_file(p) for p, _ in held_out]
    return (
        bank,
        torch.tensor([label for _, label in train]),
        queries,
        torch.tensor([label for _, label in held_out]),
    )


def knn_of(weights: Path | None, data) -> float:
    model = torchvision.models.resnet18()
    if weights is not None:
        model.load_state_dict(torch.load(weights, weights_only=True), strict=False)
    model.fc = torch.nn.Identity()
    return knn_of_backbone(model, *data, k=20, temperature=0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--dataset", choices=["cifar", "shapes"], default="cifar")
    parser.add_argument("--write", action="store_true")
    options = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cifar = options.dataset == "cifar"
        data = split(Path(tmp) / "train") if cifar else shapes_split(Path(tmp))
        torch.manual_seed(0)
        rows.append(("random init", "-", knn_of(None, data), 0.0))
        for precision in ("bf16-mixed", "32-true"):
            start = time.perf_counter()
            result = ssl_core.pretrain(
                out=Path(tmp) / precision,
                data=Path(tmp) / "train",
                model="torchvision/resnet18",
                epochs=options.epochs,
                **SETTINGS[options.dataset],
                precision=precision,
                seed=0,
            )
            rows.append(
                (
                    precision,
                    result.images_per_second,
                    knn_of(result.exported_model, data),
                    time.perf_counter() - start,
                )
            )
    lines = [
        f"### bf16 vs float32 accuracy, {datetime.date.today().isoformat()}",
        "",
        f"`python benchmarks/accuracy.py --dataset {options.dataset} --epochs "
        f"{options.epochs}`: ResNet-18, SimCLR, 32 px, seed 0, "
        f"{SETTINGS[options.dataset]}; kNN top-1 (k=20) on "
        f"{len(data[2])} held-out images.",
        "",
        "| run | loop img/s | kNN top-1 | seconds |",
        "| --- | --- | --- | --- |",
    ]
    for name, ips, accuracy, seconds in rows:
        ips_text = f"{ips:.0f}" if isinstance(ips, float) else ips
        lines.append(f"| {name} | {ips_text} | {accuracy:.1%} | {seconds:.0f} |")
    report = "\n".join(lines) + "\n"
    print(report)
    if options.write:
        results = ROOT / "benchmarks" / "RESULTS.md"
        results.write_text(results.read_text() + "\n" + report if results.exists() else report)


if __name__ == "__main__":
    main()
