"""Throughput benchmark, all figures from one run on one machine.

For each setting (32×32 CIFAR-10 JPEGs at batch 256; the same images upscaled to 128×128 at
batch 64) it measures, side by side:

  (a) ssl-core end to end (`ssl pretrain`, a fresh process per run): images/s over the
      training loop, wall time, and the peak RSS of the process tree;
  (b) the same model's pure compute rate: SimCLR forward + backward + SGD step on random
      tensors already in memory, at the same precision (the ceiling);
  (c) LightlyTrain on the same data, model, batch, image size and epochs, when a Python
      with `lightly_train` is given (--lightly-python);
  (d) an earlier commit of ssl-core itself (--baseline REV), checked out into a temporary
      git worktree and run right before and after ours: a change's speed cost as a ratio.

and prints the ratios ours/ceiling, ours/LightlyTrain and ours/baseline. Results go to
benchmarks/RESULTS.md (--write). Run: `nox -s bench -- --lightly-python /path/to/python`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CIFAR = ROOT.parent / "shared" / "data" / "cifar10-train-10k"


@dataclass
class Setting:
    name: str
    image_size: int
    batch_size: int
    images: int
    epochs: int


def tree_rss_bytes(pid: int) -> int:
    """RSS of a process and all its descendants (shared pages count once per process)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    todo.extend(int(c) for c in children.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def run_measured(command: list[str], env: dict | None = None) -> tuple[float, int, str]:
    """(wall seconds, peak tree RSS, output) of a command."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss_bytes(process.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = process.communicate()
    done.set()
    sampler.join()
    wall = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed:\n{output[-3000:]}")
    return wall, peak, output


def make_dataset(setting: Setting, root: Path) -> Path:
    """The first N CIFAR images (all classes), upscaled when the setting asks for it."""
    from PIL import Image

    files = sorted(CIFAR.glob("*/*.jpg"))
    step = max(1, len(files) // setting.images)
    chosen = files[::step][: setting.images]
    out = root / setting.name
    out.mkdir(parents=True, exist_ok=True)
    for path in chosen:
        target = out / f"{path.parent.name}_{path.name}"
        if setting.image_size == 32:
            target.symlink_to(path)
        else:
            size = (setting.image_size, setting.image_size)
            Image.open(path).convert("RGB").resize(size, Image.BICUBIC).save(target, quality=90)
    return out


def steady_rate(out: Path, skip: int = 5) -> float:
    """Images/s over the steps after the first ``skip`` (warm-up; torch.compile's compile)."""
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    later = [row for row in rows if row["step"] > skip] or rows
    return 1 / (sum(1 / row["images_per_second"] for row in later) / len(later))


def source_env(source: Path) -> dict[str, str]:
    """Environment that runs ssl-core and SimCLR from the checkout ``source``: its folders
    come first on the path, before this environment's editable installs."""
    paths = [source / "src", source / "plugins" / "simclr" / "src"]
    return {"PYTHONPATH": os.pathsep.join(str(path) for path in paths)}


def ours(
    setting: Setting,
    data: Path,
    out: Path,
    precision: str,
    compile_model: bool = False,
    source: Path | None = None,
) -> dict:
    """Our ``ssl pretrain``; with ``source``, the code of that checkout (``source_env``)."""
    env = source_env(source) if source is not None else None
    command = [
        str(Path(sys.executable).with_name("ssl")),
        "pretrain",
        f"out={out}",
        f"data={data}",
        "model=torchvision/resnet18",
        "method=simclr",
        f"epochs={setting.epochs}",
        f"batch_size={setting.batch_size}",
        f"precision={precision}",
        "overwrite=true",
        f"transform_args.image_size={setting.image_size}",
        "accelerator=cpu",
        f"compile={str(compile_model).lower()}",
    ]
    wall, peak, _ = run_measured(command, env=env)
    summary = json.loads((out / "summary.json").read_text())
    return {
        "loop_ips": summary["images_per_second"],
        "steady_ips": steady_rate(out),
        "wall": wall,
        "peak_rss": peak,
        "e2e_ips": setting.epochs
        * (setting.images // setting.batch_size)
        * setting.batch_size
        / wall,
        "precision": summary["precision"],
    }


LIGHTLY_SCRIPT = """
import sys, lightly_train
out, data, epochs, batch, size = sys.argv[1:6]
lightly_train.pretrain(out=out, data=data, model="torchvision/resnet18", method="simclr",
    epochs=int(epochs), batch_size=int(batch), precision="32-true", accelerator="cpu",
    devices=1, transform_args={"image_size": (int(size), int(size))}, overwrite=True,
    loggers={"tensorboard": None})
"""


def lightly(setting: Setting, data: Path, out: Path, python: str) -> dict:
    command = [
        python,
        "-c",
        LIGHTLY_SCRIPT,
        str(out),
        str(data),
        str(setting.epochs),
        str(setting.batch_size),
        str(setting.image_size),
    ]
    wall, peak, _ = run_measured(command, env={"LIGHTLY_TRAIN_EVENTS_DISABLED": "1"})
    images = setting.epochs * (setting.images // setting.batch_size) * setting.batch_size
    return {"wall": wall, "peak_rss": peak, "e2e_ips": images / wall}


def ceiling(
    setting: Setting,
    precision: str,
    steps: int = 12,
    model: str = "torchvision/resnet18",
    device_name: str = "cpu",
) -> float:
    """Images/s of forward + backward + step on synthetic tensors (no data loading)."""
    import torch

    import ssl_core
    from ssl_core.train.optim import build_optimizer
    from ssl_core.train.precision import autocast

    torch.manual_seed(0)
    device = torch.device(device_name)
    backbone = ssl_core.build_backbone(model)
    method = ssl_core.get_method("simclr")
    network = method(method.args_model()).build(backbone)
    network = network.to(device).to(memory_format=torch.channels_last)
    optimizer = build_optimizer(network, method.default_optimizer, setting.batch_size)
    shape = (setting.batch_size, 3, setting.image_size, setting.image_size)
    views = [
        torch.randn(shape, device=device).contiguous(memory_format=torch.channels_last)
        for _ in range(2)
    ]

    def step() -> torch.Tensor:
        with autocast(precision, device):
            loss = network(views)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    loss.item()  # waits for the device
    return steps * setting.batch_size / (time.perf_counter() - start)


def checkout(revision: str, path: Path) -> Path:
    """``revision`` of this repository as a detached worktree at ``path``."""
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), revision],
        check=True,
        capture_output=True,
    )
    return path


def baseline_table(rows: list[dict], precisions: list[str], revision: str) -> list[str]:
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", revision], capture_output=True, text=True
    ).stdout.strip()
    lines = [
        f"This code against `{revision}` ({commit}), run right before and right after ours "
        f"(mean ± half the difference):",
        "",
        "| setting | precision | ours loop img/s | baseline loop img/s | ours / baseline (loop) "
        "| ours / baseline (end to end) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        for precision in precisions:
            o = row[f"ours_{precision}"]
            first, second = row[f"baseline_{precision}"]
            loop = (first["loop_ips"] + second["loop_ips"]) / 2
            spread = abs(first["loop_ips"] - second["loop_ips"]) / 2
            e2e = (first["e2e_ips"] + second["e2e_ips"]) / 2
            lines.append(
                f"| {row['setting'].name} | {precision} | {o['loop_ips']:.0f} | "
                f"{loop:.0f} ± {spread:.0f} | {o['loop_ips'] / loop:.2f} | "
                f"{o['e2e_ips'] / e2e:.2f} |"
            )
    lines.append("")
    return lines


def machine() -> str:
    cpu = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {len(os.sched_getaffinity(0))} cores, {platform.system()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lightly-python", help="a Python with lightly_train installed")
    parser.add_argument("--quick", action="store_true", help="fewer images (a smoke run)")
    parser.add_argument("--write", action="store_true", help="append to benchmarks/RESULTS.md")
    parser.add_argument(
        "--compile", action="store_true", help="also run ours with compile=True (bf16)"
    )
    parser.add_argument(
        "--baseline", metavar="REV", help="also run this git revision of ssl-core (e.g. HEAD~3)"
    )
    parser.add_argument(
        "--precision",
        nargs="+",
        choices=["bf16-mixed", "32-true"],
        default=["bf16-mixed", "32-true"],
        help="precisions to measure (bf16 is emulated, and slow, on CPUs without it)",
    )
    options = parser.parse_args()

    import torch
    import torchvision

    settings = [
        Setting("32px", 32, 256, 2560 if options.quick else 10000, 1 if options.quick else 2),
        Setting("128px", 128, 64, 512 if options.quick else 2048, 1),
    ]
    precisions = options.precision
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        baseline = checkout(options.baseline, root / "baseline") if options.baseline else None
        for setting in settings:
            data = make_dataset(setting, root / "data")
            row: dict = {"setting": setting}
            for precision in precisions:
                # This machine's speed drifts over minutes (shared cores): the ceiling and
                # the baseline are measured right before and right after our run, averaged.
                before = ceiling(setting, precision)
                if baseline is not None:
                    base_before = ours(
                        setting, data, root / f"base-{setting.name}", precision, source=baseline
                    )
                row[f"ours_{precision}"] = ours(
                    setting, data, root / f"ours-{setting.name}", precision
                )
                if baseline is not None:
                    base_after = ours(
                        setting, data, root / f"base-{setting.name}", precision, source=baseline
                    )
                    row[f"baseline_{precision}"] = (base_before, base_after)
                after = ceiling(setting, precision)
                row[f"ceiling_{precision}"] = (before + after) / 2
                row[f"ceiling_spread_{precision}"] = abs(before - after) / 2
                print(setting.name, precision, row[f"ours_{precision}"], before, after, flush=True)
            if options.compile:
                row["compiled"] = ours(
                    setting, data, root / f"ours-{setting.name}", "bf16-mixed", compile_model=True
                )
                print(setting.name, "compiled", row["compiled"], flush=True)
            if options.lightly_python:
                row["lightly"] = lightly(
                    setting, data, root / f"lt-{setting.name}", options.lightly_python
                )
                print(setting.name, "lightly", row["lightly"], flush=True)
            rows.append(row)
        if baseline is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", baseline])

    lines = [
        f"## {datetime.date.today().isoformat()}: {machine()}",
        "",
        f"torch {torch.__version__}, torchvision {torchvision.__version__}; "
        f"`python benchmarks/bench.py{' --quick' if options.quick else ''}"
        f"{' --compile' if options.compile else ''}"
        f"{f' --baseline {options.baseline}' if options.baseline else ''}"
        f"{' --precision ' + ' '.join(precisions) if len(precisions) < 2 else ''}`; torchvision "
        f"ResNet-18 + SimCLR (head 2048-128), CIFAR-10 JPEGs (upscaled for 128 px), "
        f"`num_workers=auto`. Loop = images/s inside the training loop; end to end = all "
        f"trained images / wall time of the whole command (start-up, decoding, export "
        f"included). Ceiling = forward+backward+step on random tensors, same precision, "
        f"measured right before and after each of our runs (mean ± half the difference: "
        f"this machine's speed drifts by minutes). ours/LightlyTrain compares end to end.",
        "",
        "| setting | precision | ours loop img/s | ceiling img/s | ours/ceiling | ours end-to-end "
        "img/s | LightlyTrain end-to-end img/s | ours/LightlyTrain (e2e) | peak RSS ours / LT |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        s = row["setting"]
        lt = row.get("lightly")
        for precision in precisions:
            o, c = row[f"ours_{precision}"], row[f"ceiling_{precision}"]
            lt_ips = f"{lt['e2e_ips']:.0f}" if lt else "n/a"
            ratio = f"{o['e2e_ips'] / lt['e2e_ips']:.2f}" if lt else "n/a"
            rss = (
                f"{o['peak_rss'] / 2**30:.2f} / {lt['peak_rss'] / 2**30:.2f} GiB"
                if lt
                else (f"{o['peak_rss'] / 2**30:.2f} GiB / n/a")
            )
            spread = row[f"ceiling_spread_{precision}"]
            lines.append(
                f"| {s.name}, batch {s.batch_size}, {s.images} images × {s.epochs} epochs | "
                f"{precision} | {o['loop_ips']:.0f} | {c:.0f} ± {spread:.0f} | "
                f"{o['loop_ips'] / c:.2f} | "
                f"{o['e2e_ips']:.0f} | {lt_ips} | {ratio} | {rss} |"
            )
    lines.append("")
    if baseline is not None:
        lines += baseline_table(rows, precisions, options.baseline)
    if options.compile:
        lines += [
            "torch.compile (`compile=True`), bf16-mixed; steady = images/s after the first 5 "
            "steps (the compile happens in the first):",
            "",
            "| setting | eager steady img/s | compiled steady img/s | compiled / eager | "
            "end to end, compiled / eager |",
            "| --- | --- | --- | --- | --- |",
        ]
        for row in rows:
            eager, compiled = row["ours_bf16-mixed"], row["compiled"]
            lines.append(
                f"| {row['setting'].name} | {eager['steady_ips']:.0f} | "
                f"{compiled['steady_ips']:.0f} | {compiled['steady_ips'] / eager['steady_ips']:.2f}"
                f" | {compiled['e2e_ips'] / eager['e2e_ips']:.2f} |"
            )
        lines.append("")
    report = "\n".join(lines)
    print(report)
    if options.write:
        results = ROOT / "benchmarks" / "RESULTS.md"
        header = "# Benchmark results\n\nNewest first. Each section is one run of bench.py.\n\n"
        old = results.read_text().removeprefix(header) if results.exists() else ""
        results.write_text(header + report + "\n" + old)


if __name__ == "__main__":
    main()
