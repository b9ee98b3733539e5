"""The GPU check, prepared for a session that is lent a CUDA machine: one script, one run.

It checks and measures, on one GPU:
  - precision="auto" resolves to bf16-mixed;
  - nvJPEG decoding (torchvision.io.decode_jpeg on the device) against the CPU decoder, and
    the batched augmentation finished on the GPU against the same batch finished on the CPU;
  - ResNet-50 SimCLR at 224 px, batch 256, end to end from JPEG files of mixed sizes
    (256-512 px), in three data paths: JPEGs read each epoch and decoded on the GPU
    (cache_images=False, the default path for data sets too large to cache); images
    decoded once into the cache; and everything on the CPU (augment_on_device=False);
  - the same model's pure compute rate (forward + backward + step on random tensors on the
    GPU, same precision), and the ratio ours/compute for each path (target: >= 0.9).
It prints a Markdown section; --write FILE appends it to FILE (then add it to RESULTS.md).

On the lent machine (its python3 has torch, torchvision, timm, typer, rich, pluggy, but
not pydantic): build wheels here and carry them, e.g.
    python -m pip wheel --no-deps -w .whl . plugins/simclr
    python -m pip download --no-deps --only-binary=:all: --python-version 3.12 \\
        --platform manylinux2014_x86_64 -d .whl pydantic pydantic-core annotated-types \\
        typing-inspection
and run (carry .whl):
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl &&
    PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --write $OUT/gpu.md
Smoke run on a CPU machine (checks the script, measures nothing of interest):
    python benchmarks/gpu_check.py --device cpu --quick
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
import torchvision
from bench import Setting, ceiling
from PIL import Image

import ssl_core
from ssl_core.data.decode import decode_file
from ssl_core.data.device_decode import decode_on, load_encoded
from ssl_core.transforms.base import Transform
from ssl_core.transforms.batched import BatchedViews


def make_jpegs(root: Path, count: int, sizes: tuple[int, int], seed: int = 0) -> Path:
    """``count`` photo-like JPEGs (smooth colour fields plus noise) of random sizes."""
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    jobs = [(i, rng.randint(*sizes), rng.randint(*sizes), rng.random()) for i in range(count)]

    def write(job: tuple[int, int, int, float]) -> None:
        index, width, height, tint = job
        generator = torch.Generator().manual_seed(index)
        field = torch.rand(1, 3, 8, 8, generator=generator) * 255 * (0.5 + tint / 2)
        image = torch.nn.functional.interpolate(field, (height, width), mode="bicubic")[0]
        image += torch.randn(image.shape, generator=generator) * 12
        array = image.clamp(0, 255).byte().permute(1, 2, 0).numpy()
        Image.fromarray(array).save(root / f"{index:06d}.jpg", quality=90)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(write, jobs))
    return root


def steady_rate(out: Path) -> float:
    """Images/s after the first epoch (warm-up, cuDNN autotuning): the metrics' window rates
    averaged per step as time per image."""
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    later = [row for row in rows if row["epoch"] > 1] or rows
    return 1 / statistics.fmean(1 / row["images_per_second"] for row in later)


def check_decoding(files: list[Path], device: torch.device) -> str:
    encoded = [load_encoded(path) for path in files]
    on_device = decode_on(encoded, device)
    differences = [
        (image.cpu().float() - decode_file(path).float()).abs()
        for image, path in zip(on_device, files, strict=True)
    ]
    worst = max(float(d.max()) for d in differences)
    mean = statistics.fmean(float(d.mean()) for d in differences)
    return (
        f"decode on {device.type} vs libjpeg-turbo on the CPU, {len(files)} files: "
        f"mean |diff| {mean:.3f}, max {worst:.0f} (of 255)"
    )


def check_augmentation(files: list[Path], device: torch.device) -> str:
    """The same prepared batch finished on the device and on the CPU."""
    transform_cls = ssl_core.get_transform("simclr")
    maker: Transform = transform_cls(transform_cls.args_model(image_size=64))
    batched: BatchedViews = maker.build_batched()
    items = [(seed, decode_file(path)) for seed, path in enumerate(files)]
    prepared = batched.prepare(items)
    on_cpu = batched.finish(prepared)
    on_device = batched.finish(prepared.to(device))
    worst = max(float((a - b.cpu()).abs().max()) for a, b in zip(on_cpu, on_device, strict=True))
    return f"augmentation finished on {device.type} vs on the CPU: max |diff| {worst:.2e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--images", type=int, default=6144)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--write", type=Path, help="append the report to this file")
    options = parser.parse_args()
    device = torch.device(options.device)
    model = "torchvision/resnet18" if options.quick else "torchvision/resnet50"
    image_size, batch = (64, 16) if options.quick else (224, 256)
    count = 96 if options.quick else options.images
    sizes = (48, 96) if options.quick else (256, 512)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        data = make_jpegs(root / "jpegs", count, sizes)
        print(f"made {count} JPEGs in {time.perf_counter() - start:.0f} s", flush=True)
        files = sorted(data.glob("*.jpg"))[:64]
        lines += [f"- {check_decoding(files, device)}", f"- {check_augmentation(files, device)}"]
        print("\n".join(lines), flush=True)
        runs = [
            ("JPEGs read each epoch, decoded + augmented on the device", False, True),
            ("images cached (decoded once on the CPU), augmented on the device", True, True),
            ("JPEGs decoded + augmented by CPU loader workers", False, False),
        ]
        rows = []
        precision = "?"
        for name, cache, on_device in runs:
            out = root / f"run-{len(rows)}"
            started = time.perf_counter()
            result = ssl_core.pretrain(
                out=out,
                data=data,
                model=model,
                epochs=options.epochs,
                batch_size=batch,
                transform_args={"image_size": image_size},
                accelerator=device.type,
                cache_images=cache,
                augment_on_device=on_device,
            )
            precision = result.precision
            rate = steady_rate(out)
            wall = time.perf_counter() - started
            rows.append((name, rate, wall))
            print(f"{name}: {rate:.0f} img/s after epoch 1, {wall:.0f} s in all", flush=True)
        setting = Setting("gpu", image_size, batch, count, options.epochs)
        compute = ceiling(setting, precision, steps=20, model=model, device_name=options.device)
        print(f"compute ceiling: {compute:.0f} img/s", flush=True)

    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke run)"
    report = [
        f"## {datetime.date.today().isoformat()}: GPU check on {card}",
        "",
        f"torch {torch.__version__}, torchvision {torchvision.__version__}; "
        f"`python benchmarks/gpu_check.py{' --quick' if options.quick else ''}`: {model} + "
        f"SimCLR, {image_size} px, batch {batch}, {count} JPEGs of {sizes[0]}-{sizes[1]} px, "
        f"{options.epochs} epochs, precision auto -> {precision}, num_workers auto. "
        f"Rates are images/s (two views each) after the first epoch.",
        "",
        *lines,
        "",
        "| data path | img/s | ours/compute | wall s |",
        "| --- | --- | --- | --- |",
        *(f"| {name} | {ips:.0f} | {ips / compute:.2f} | {wall:.0f} |" for name, ips, wall in rows),
        f"| compute only (random tensors on the device) | {compute:.0f} | 1.00 | - |",
        "",
    ]
    text = "\n".join(report)
    print(text)
    if options.write:
        with options.write.open("a") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
