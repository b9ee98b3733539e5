"""The quick-start demo: draw a small image set, pretrain SimCLR on it, show what it gained.

``python -m ssl_core.demo`` (or ``nox -s demo``). The images are drawn here, so nothing is
downloaded: five kinds of texture (stripes, checks, dots, rings, waves), each image in one
random tint at two random brightnesses, at a random phase. Everything that tells two
images of one kind apart (tint, brightness, contrast, phase, position) is something
SimCLR's augmentations also change between two views of one image (hue jitter over the
whole colour wheel, brightness, contrast, crops), so matching views teaches the network the
kind. A random-init ResNet-18's features mostly follow colour, so a kNN classifier of the
kind on them is poor. The demo ends with the kNN accuracy before and after pretraining, on
500 images it did not train on, and the plots.
"""

from __future__ import annotations

import argparse
import colorsys
import math
import random
import shlex
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageDraw
from rich.console import Console

if TYPE_CHECKING:
    from torch import Tensor

SHAPES = ("circle", "square", "triangle", "stripes")


def draw_shape(kind: str, rng: random.Random, size: int = 32) -> Image.Image:
    """A shape on a noisy background: the demo's images before textures, kept for the
    stand-in photos the tests draw where the shared CIFAR-10 set is missing."""
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


TEXTURES = ("stripes", "checks", "dots", "rings", "waves")
PERIOD = (12.0, 15.0)  # of the pattern, in pixels: finer ones do not survive the stem
# Angles near one orientation: the augmentations do not rotate, so a kind drawn at every
# angle would teach the network the angle rather than the kind.
MAX_ANGLE = 0.15  # radians
NOISE = (3.0, 10.0)  # standard deviation of the pixel noise


def draw_texture(kind: str, rng: random.Random, size: int = 32) -> Tensor:
    """A uint8 3×size×size texture: a wave pattern of ``kind`` thresholded (with soft
    edges) between two brightnesses (at least 100 of 255 apart) of one random tint, plus
    pixel noise."""
    import torch

    ys, xs = torch.meshgrid(torch.arange(float(size)), torch.arange(float(size)), indexing="ij")
    angle, phase = rng.uniform(-MAX_ANGLE, MAX_ANGLE), rng.uniform(0, 2 * math.pi)
    u = xs * math.cos(angle) + ys * math.sin(angle)
    v = ys * math.cos(angle) - xs * math.sin(angle)
    w = 2 * math.pi / rng.uniform(*PERIOD)
    if kind == "stripes":
        wave = torch.sin(w * u + phase)
    elif kind == "checks":
        wave = 2 * torch.sin(w * u + phase) * torch.sin(w * v + rng.uniform(0, 2 * math.pi))
    elif kind == "dots":
        wave = torch.cos(w * u + phase) + torch.cos(w * v + rng.uniform(0, 2 * math.pi)) - 1
    elif kind == "rings":
        cx, cy = (rng.uniform(-size / 2, 1.5 * size) for _ in range(2))
        wave = torch.sin(w * ((xs - cx) ** 2 + (ys - cy) ** 2).sqrt() + phase)
    else:
        wave = torch.sin(w * (u + 2.5 * torch.sin(v * 2 * math.pi / rng.uniform(10, 16))) + phase)
    mask = (3 * wave).clamp(-1, 1) * 0.5 + 0.5
    while True:
        dark, light = sorted(rng.uniform(0, 255) for _ in range(2))
        if light - dark > 100:
            break
    tint = torch.tensor(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.3, 1.0), 1.0))
    fg, bg = (light * tint, dark * tint) if rng.random() < 0.5 else (dark * tint, light * tint)
    noise = torch.randn(3, size, size, generator=torch.Generator().manual_seed(rng.getrandbits(63)))
    image = bg.view(3, 1, 1) + (fg - bg).view(3, 1, 1) * mask + noise * rng.uniform(*NOISE)
    return image.clamp(0, 255).round().to(torch.uint8)


def make_textures(
    per_kind: int, seed: int, folder: Path | None = None
) -> tuple[list[Tensor], Tensor]:
    """``per_kind`` images of each texture and their labels; written as PNGs under
    ``folder/<kind>/`` when a folder is given."""
    import torch
    from torchvision.io import write_png

    rng = random.Random(seed)
    images, labels = [], []
    for label, kind in enumerate(TEXTURES):
        for i in range(per_kind):
            image = draw_texture(kind, rng)
            if folder is not None:
                (folder / kind).mkdir(parents=True, exist_ok=True)
                write_png(image, str(folder / kind / f"{i:04d}.png"))
            images.append(image)
            labels.append(label)
    return images, torch.tensor(labels)


# What the demo trains with: 210 steps of batch 64, about a minute on 2 quiet CPU cores. The
# hue jitter covers the whole colour wheel (0.5, SimCLR's default is 0.2) as the tints do;
# AdamW learns faster than SGD in a run this short.
SETTINGS: dict[str, Any] = {
    "model": "torchvision/resnet18",
    "method": "simclr",
    "method_args": {"hidden_dim": 512, "output_dim": 128, "temperature": 0.2},
    "transform_args": {
        "image_size": 32,
        "random_resize": {"min_scale": 0.35},
        "color_jitter": {"hue": 0.5},
        "gaussian_blur": {"prob": 0.0},
    },
    "optim_args": {"name": "adamw", "lr": 0.004, "weight_decay": 1e-4},
    "batch_size": 64,
}


def main(argv: list[str] | None = None) -> None:
    """Draw, pretrain, compare."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    parser.add_argument("--images-per-kind", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0, help="Seed of the images and the run.")
    options = parser.parse_args(argv)

    import torch
    import torchvision
    from rich.table import Column, Table

    import ssl_core
    from ssl_core.eval.knn import knn_of_backbone

    console = Console(highlight=False)
    data_dir, run_dir = options.out / "images", options.out / "run"
    total = options.images_per_kind * len(TEXTURES)
    console.print(f"Drawing {total} images of {len(TEXTURES)} textures into {data_dir} ...")
    if data_dir.exists():
        shutil.rmtree(data_dir)
    bank, bank_labels = make_textures(options.images_per_kind, options.seed, data_dir)
    queries, query_labels = make_textures(100, options.seed + 10_000)

    started = time.perf_counter()
    result = ssl_core.pretrain(
        out=run_dir,
        data=data_dir,
        epochs=options.epochs,
        seed=options.seed,
        overwrite=True,
        **SETTINGS,
    )
    seconds = time.perf_counter() - started

    def accuracy(weights: Path | None) -> float:
        torch.manual_seed(options.seed)
        model = torchvision.models.resnet18()
        if weights is not None:
            model.load_state_dict(torch.load(weights, weights_only=True), strict=False)
        model.fc = torch.nn.Identity()
        return knn_of_backbone(model, bank, bank_labels, queries, query_labels)

    before, after = accuracy(None), accuracy(result.exported_model)
    gain = Table(
        "kNN accuracy of the texture kind",
        "random init",
        "pretrained",
        title=f"ssl-core demo: SimCLR on {total} drawn textures, {result.epochs} epochs",
        title_justify="left",
    )
    gain.add_row(
        f"{len(queries)} new images (chance {1 / len(TEXTURES):.0%})",
        f"{before:.1%}",
        f"[bold green]{after:.1%}[/bold green] ({100 * (after - before):+.1f} points)",
    )
    console.print(gain)
    # Paths fold onto the next line rather than end in "…".
    table = Table(Column(no_wrap=True), Column(overflow="fold"), show_header=False)
    plots = result.out / "plots" / "overview.png"
    rows = [
        ("Model / method", f"{SETTINGS['model']}, {SETTINGS['method']}"),
        ("Epochs / steps", f"{result.epochs} / {result.steps} (batch {SETTINGS['batch_size']})"),
        ("Final loss", f"{result.final_loss:.3f}"),
        (
            "Time",
            f"{seconds:.0f} s, {result.images_per_second:.0f} images/s "
            f"({result.device}, {result.precision})",
        ),
        ("Plots", str(plots) if plots.exists() else "pip install 'ssl-core[plots]' to draw them"),
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
