"""What evaluating costs, side by side in one run on one machine (issue 13):

  (a) the online kNN monitor: the same pretraining with and without ``val_data`` (its
      default cadence, ``val_every_epochs="auto"``), run alternately ``--repeats`` times;
      the overhead is the extra wall time as a fraction of the run without it;
  (b) ``ssl_core.embed`` on a folder of image files against plain eager inference of the
      same exported backbone: decode each file, resize and centre crop, normalise, batch,
      forward under ``torch.inference_mode``, nothing else (no threads, no output file).
      The ratio is embed's images/s over the plain loop's; the target is at least 0.9.

Data: the CIFAR-10 photographs in ../shared/data when present, else drawn textures.
Run: ``python benchmarks/use_bench.py [--write]`` (writes a section of RESULTS.md).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from bench import prepend_results
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import functional as F

import ssl_core
from ssl_core.data.scan import scan_images
from ssl_core.demo import make_textures

ROOT = Path(__file__).resolve().parent.parent
CIFAR = ROOT.parent / "shared" / "data" / "cifar10-train-10k"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def labelled_folder(tmp: Path, images: int) -> Path:
    """A labelled folder of ``images`` images: links to CIFAR-10 files, or drawn textures."""
    folder = tmp / "images"
    if CIFAR.is_dir():
        classes = sorted(p for p in CIFAR.iterdir() if p.is_dir())
        per_class = images // len(classes)
        for cls in classes:
            (folder / cls.name).mkdir(parents=True)
            for file in sorted(cls.iterdir())[:per_class]:
                (folder / cls.name / file.name).symlink_to(file)
    else:
        make_textures(images // 5, seed=0, folder=folder)
    return folder


def timed_pretrain(data: Path, out: Path, epochs: int, val_data: Path | None) -> float:
    started = time.perf_counter()
    ssl_core.pretrain(
        out=out,
        data=data,
        model="torchvision/resnet18",
        method="simclr",
        epochs=epochs,
        batch_size=128,
        seed=0,
        overwrite=True,
        val_data=val_data,
        transform_args={"image_size": 32},
    )
    return time.perf_counter() - started


@torch.inference_mode()
def plain_inference(weights: Path, files: list[Path], size: int, batch_size: int) -> float:
    """Images/s of the simplest loop that gives the same features."""
    model = torchvision.models.resnet18()
    model.load_state_dict(torch.load(weights, weights_only=True), strict=False)
    model.fc = torch.nn.Identity()
    model.eval()
    started = time.perf_counter()
    for i in range(0, len(files), batch_size):
        batch = []
        for file in files[i : i + batch_size]:
            image = decode_image(str(file), mode=ImageReadMode.RGB)
            image = F.center_crop(F.resize(image, [size]), [size, size])
            batch.append(image)
        x = F.normalize(torch.stack(batch).float() / 255, MEAN, STD)
        model(x)
    return len(files) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-images", type=int, default=5000)
    parser.add_argument("--val-images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--embed-images", type=int, default=5000)
    parser.add_argument("--write", action="store_true", help="Add a section to RESULTS.md.")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        train = labelled_folder(tmp / "train", options.train_images)
        val = labelled_folder(tmp / "val", options.val_images)
        without, with_monitor = [], []
        for repeat in range(options.repeats):
            without.append(timed_pretrain(train, tmp / f"plain{repeat}", options.epochs, None))
            with_monitor.append(timed_pretrain(train, tmp / "monitored", options.epochs, val))
            print(f"repeat {repeat}: {without[-1]:.1f} s without, {with_monitor[-1]:.1f} s with")
        base, monitored = statistics.median(without), statistics.median(with_monitor)
        overhead = (monitored - base) / base

        files = scan_images(labelled_folder(tmp / "embed", options.embed_images))
        weights = tmp / "monitored" / "exported_models" / "exported_last.pt"
        ours = ssl_core.embed(
            tmp / "monitored", tmp / "embed" / "images", tmp / "emb.npy", progress=False
        ).images_per_second
        plain = plain_inference(weights, files, 32, 128)
        ours_again = ssl_core.embed(
            tmp / "monitored",
            tmp / "embed" / "images",
            tmp / "emb.npy",
            overwrite=True,
        ).images_per_second
        ours = max(ours, ours_again)  # the first pass also warms the file cache

    data = "CIFAR-10 JPEGs" if CIFAR.is_dir() else "drawn PNG textures"
    lines = [
        f"## {datetime.date.today()}: online kNN monitor overhead and `ssl embed` throughput",
        "",
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}. `python benchmarks/use_bench.py "
        f"--epochs {options.epochs} --repeats {options.repeats}`: {data}, torchvision "
        f"ResNet-18, SimCLR, 32 px.",
        "",
        "| measure | ours | reference | ratio |",
        "| --- | --- | --- | --- |",
        f"| pretraining, {options.train_images} images × {options.epochs} epochs, val_data "
        f"{options.val_images} images (median of {options.repeats}) | {monitored:.1f} s with "
        f"monitor | {base:.1f} s without | overhead {overhead:+.1%} |",
        f"| embedding {len(files)} images, batch 128 | `ssl embed` {ours:.0f} img/s | plain "
        f"eager loop {plain:.0f} img/s | {ours / plain:.2f} |",
        "",
    ]
    print("\n".join(lines))
    if options.write:
        prepend_results("\n".join(lines))


if __name__ == "__main__":
    main()
