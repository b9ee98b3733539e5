"""Image folders for tests: real JPEG files, drawn here, so no test needs a download."""

from __future__ import annotations

import random
from pathlib import Path

SHAPES = ("circle", "square", "triangle", "stripes")


def write_image_folder(folder: Path, count: int = 32, size: int = 32, classes: int = 0) -> Path:
    """``count`` JPEGs of ``size``×``size`` px in ``folder``: flat, or spread evenly over
    ``classes`` subfolders (``class0``, ``class1``, ...) for labelled data. Each class is a
    shape and a tint of its own on a noisy background, so a kNN on them is above chance; the
    same arguments give the same files. Flat, each image has a tint of its own."""
    from PIL import Image

    from ssl_core.demo import draw_shape

    if count < 1 or size < 1 or classes < 0:
        raise ValueError(
            f"count and size must be positive and classes not negative, got "
            f"count={count}, size={size}, classes={classes}"
        )
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        # Flat: a tint per image, so that no two images are alike (a batch of near copies
        # would leave BatchNorm little variance to normalise by).
        label = i % classes if classes else i
        target = folder / f"class{label}" if classes else folder
        target.mkdir(exist_ok=True)
        rng = random.Random(i)
        tint = Image.new("RGB", (size, size), tuple((label * 97 + 40 * c) % 256 for c in range(3)))
        image = Image.blend(draw_shape(SHAPES[label % len(SHAPES)], rng, size), tint, 0.35)
        image.save(target / f"{i:04d}.jpg", quality=90)
    return folder
