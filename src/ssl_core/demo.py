"""The quick-start demo: make a small image set, pretrain SimCLR on it, print a summary.

``python -m ssl_core.demo`` (or ``nox -s demo``). The images are drawn here (coloured
shapes on noisy backgrounds, four kinds), so nothing is downloaded. The summary compares
a kNN classifier of the shape kind on the random backbone and on the pretrained one.
"""

from __future__ import annotations

import argparse
import math
import random
import shlex
import time
from pathlib import Path

from PIL import Image, ImageDraw
from rich.console import Console

SHAPES = ("circle", "square", "triangle", "stripes")


def draw_shape(kind: str, rng: random.Random, size: int = 32) -> Image.Image:
    background = tuple(rng.randrange(0, 256) for _ in range(3))
    color = tuple((c + rng.randrange(96, 160)) % 256 for c in background)
    image = Image.effect_noise((size, size), rng.uniform(10, 40)).convert("RGB")
    image = Image.blend(image, Image.new("RGB", (size, size), background), 0.7)
    draw = ImageDraw.Draw(image)
    r = rng.uniform(0.22, 0.4) * size
    cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
    if kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=color)
    elif kind == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=color)
    elif kind == "triangle":
        angle = rng.uniform(0, 2 * math.pi)
        points = [
            (
                cx + r * math.cos(angle + k * 2 * math.pi / 3),
                cy + r * math.sin(angle + k * 2 * math.pi / 3),
            )
            for k in range(3)
        ]
        draw.polygon(points, fill=color)
    else:
        width = rng.randrange(2, 5)
        for x in range(0, size, 2 * width):
            draw.rectangle((x, 0, x + width - 1, size), fill=color)
        if rng.random() < 0.5:
            image = image.transpose(Image.Transpose.ROTATE_90)
    return image


def make_example_images(root: Path, per_shape: int, seed: int = 0) -> list[tuple[Path, int]]:
    """Write ``per_shape`` PNGs of each shape under root/<shape>/; return (path, label)."""
    rng = random.Random(seed)
    files = []
    for label, kind in enumerate(SHAPES):
        folder = root / kind
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_shape):
            path = folder / f"{i:04d}.png"
            draw_shape(kind, rng).save(path)
            files.append((path, label))
    return files


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    parser.add_argument("--images-per-shape", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=20)
    options = parser.parse_args(argv)

    import torch
    import torchvision
    from rich.table import Column, Table

    import ssl_core
    from ssl_core.data.decode import decode_file
    from ssl_core.eval.knn import knn_of_backbone

    console = Console(highlight=False)
    data_dir, eval_dir, run_dir = (options.out / n for n in ("images", "held_out", "run"))
    console.print(
        f"Drawing {options.images_per_shape} images of each of {len(SHAPES)} shapes "
        f"into {data_dir} ..."
    )
    make_example_images(data_dir, options.images_per_shape, seed=0)
    held_out = make_example_images(eval_dir, 60, seed=1)

    started = time.perf_counter()
    result = ssl_core.pretrain(
        out=run_dir,
        data=data_dir,
        model="torchvision/resnet18",
        method="simclr",
        method_args={"hidden_dim": 512, "output_dim": 128},
        transform_args={
            "image_size": 32,
            "random_resize": {"min_scale": 0.3},
            "gaussian_blur": {"prob": 0.0},
        },
        epochs=options.epochs,
        batch_size=64,
        overwrite=True,
    )
    seconds = time.perf_counter() - started

    images = [decode_file(p) for p, _ in held_out]
    labels = torch.tensor([label for _, label in held_out])
    bank_idx = [i for i in range(len(images)) if i % 60 < 40]
    query_idx = [i for i in range(len(images)) if i % 60 >= 40]

    def accuracy(model) -> float:
        model.fc = torch.nn.Identity()
        return knn_of_backbone(
            model,
            [images[i] for i in bank_idx],
            labels[bank_idx],
            [images[i] for i in query_idx],
            labels[query_idx],
        )

    torch.manual_seed(0)
    random_acc = accuracy(torchvision.models.resnet18())
    pretrained = torchvision.models.resnet18()
    pretrained.load_state_dict(torch.load(result.exported_model, weights_only=True), strict=False)
    pretrained_acc = accuracy(pretrained)

    # Paths fold onto the next line rather than end in "…".
    table = Table(
        Column(no_wrap=True),
        Column(overflow="fold"),
        title="ssl-core demo: SimCLR on drawn shapes",
        show_header=False,
        title_justify="left",
    )
    rows = [
        ("Images", f"{result.images} ({len(SHAPES)} shapes, 32×32 PNG)"),
        ("Model / method", "torchvision/resnet18, simclr"),
        ("Epochs / steps", f"{result.epochs} / {result.steps} (batch 64)"),
        ("Final loss", f"{result.final_loss:.3f}"),
        (
            "Time",
            f"{seconds:.0f} s, {result.images_per_second:.0f} images/s "
            f"({result.device}, {result.precision})",
        ),
        (
            "kNN shape accuracy",
            f"random init {random_acc:.1%} -> pretrained {pretrained_acc:.1%} "
            f"(held-out images, chance {1 / len(SHAPES):.0%})",
        ),
        ("Pretrained backbone", str(result.exported_model)),
        ("Run directory", f"{run_dir} (train.log, metrics.jsonl, checkpoints/)"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    print_next_command(console)


# What to run next on one's own images, one option per line.
NEXT_COMMAND = (
    ("ssl", "pretrain"),
    ("--out", "out/mine"),
    ("--data", "YOUR_IMAGES"),
    ("--model", "torchvision/resnet18"),
    ("--method", "simclr"),
)


def print_next_command(console: Console) -> None:
    """Short lines joined by shell continuations: a command wrapped by the terminal would
    break mid-argument, and one copied from it would not run."""
    console.print("Next, on your own images:")
    lines = [shlex.join(words) for words in NEXT_COMMAND]
    for i, line in enumerate(lines):
        continuation = " \\" if i < len(lines) - 1 else ""
        indent = "  " if i == 0 else "      "
        console.print(indent + line + continuation, markup=False, soft_wrap=True)


if __name__ == "__main__":
    main()
