"""Labelled image folders and tiny pretraining runs for the evaluate, embed and export tests."""

from __future__ import annotations

import atexit
import functools
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

CLASSES = ("blue", "green", "orange", "purple")
PALETTE = ((40, 70, 200), (40, 170, 60), (230, 140, 30), (140, 50, 160))
# pretrain's settings for a run of seconds on a CPU: one epoch, 32 px, small heads.
TINY = {
    "model": "torchvision/resnet18",
    "transform_args": {"image_size": 32},
    "epochs": 1,
    "batch_size": 16,
    "num_workers": 0,
    "accelerator": "cpu",
    "precision": "32-true",
}


def make_labelled_images(root: Path, per_class: int, seed: int, side: int = 32) -> Path:
    """PNGs under root/<class>/: a disc or box of the class's colour on a noisy grey
    background, at a random place and size (a kNN on raw pixels is above chance)."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    for label, name in enumerate(CLASSES):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            grey = rng.randrange(60, 200)
            image = Image.effect_noise((side, side), rng.uniform(10, 30)).convert("RGB")
            image = Image.blend(image, Image.new("RGB", (side, side), (grey,) * 3), 0.6)
            r = rng.uniform(0.25, 0.45) * side
            cx, cy = rng.uniform(r, side - r), rng.uniform(r, side - r)
            colour = tuple(min(255, max(0, c + rng.randrange(-25, 26))) for c in PALETTE[label])
            box = (cx - r, cy - r, cx + r, cy + r)
            draw = ImageDraw.Draw(image)
            (draw.ellipse if i % 2 else draw.rectangle)(box, fill=colour)
            image.save(folder / f"{i:03d}.png")
    return root


def tiny_run(out: Path, data: Path, method: str = "simclr", **options: Any) -> Path:
    """A real ``pretrain`` run of a step or three; returns its directory."""
    import ssl_core

    settings: dict[str, Any] = {**TINY, **options}
    settings["transform_args"] = {**TINY["transform_args"], **options.get("transform_args", {})}
    ssl_core.pretrain(out=out, data=data, method=method, **settings)
    return out


@functools.cache
def simclr_run() -> Path:
    """One tiny SimCLR run (16 images, one step) shared by every test module of the session
    that only reads it: training is most of these tests' time."""
    root = Path(tempfile.mkdtemp(prefix="ssl-core-use-run-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    data = make_labelled_images(root / "images", per_class=4, seed=2)
    return tiny_run(root / "simclr", data, method_args={"hidden_dim": 64, "output_dim": 16})
