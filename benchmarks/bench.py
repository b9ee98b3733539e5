"""Throughput benchmark, all figures from one run on one machine.

For each setting (SimCLR, the default: 32×32 CIFAR-10 JPEGs at batch 256; the same images
upscaled to 128×128 at batch 64. DINO, `--method dino`: ResNet-18 at 64 px global / 32 px
local and 128 / 64 px, ViT-Tiny/16 at 224 / 96 px, 2 global + 6 local views, batch 64,
each tool at its default precision) it measures, side by side:

  (a) ssl-core end to end (`ssl pretrain`, a fresh process per run): images/s over the
      training loop, wall time, and the peak RSS of the process tree;
  (b) the same model's pure compute rate: the method's forward + backward + optimiser step
      (and its per-step hooks) on random tensors already in memory, at the same precision
      (the ceiling);
  (c) LightlyTrain on the same data, model, batch, image size and epochs, when a Python
      with `lightly_train` is given (--lightly-python);
  (d) an earlier commit of ssl-core itself (--baseline REV), checked out into a temporary
      git worktree and run right before and after ours: a change's speed cost as a ratio.

and prints the ratios ours/ceiling, ours/LightlyTrain and ours/baseline. Results go to
benchmarks/RESULTS.md (--write). Run: `nox -s bench -- --lightly-python /path/to/python`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CIFAR = ROOT.parent / "shared" / "data" / "cifar10-train-10k"


# DINO's local views per image, as both tools default to.
LOCAL_VIEWS = 6


@dataclass
class Setting:
    name: str
    image_size: int
    batch_size: int
    images: int
    epochs: int
    method: str = "simclr"
    local_size: int | None = None  # DINO's local views; None for SimCLR
    model: str = "torchvision/resnet18"
    ceiling_steps: int = 12  # fewer where one step takes seconds
    ceiling_warmup: int = 3

    @property
    def slug(self) -> str:
        """The name as a folder name."""
        return re.sub(r"[^\w.-]+", "-", self.name)


# DINO: (name, model, global px, local px, images, ceiling steps, ceiling warm-up steps).
# About a minute of our loop each on 2 cores: a DINO image costs ~14 times a 32 px view.
# One step takes seconds (a ViT one, half a minute), so the ceiling takes few: after one
# step the allocator has what it needs.
DINO_SETTINGS = [
    ("ResNet-18 64px / 32px local", "torchvision/resnet18", 64, 32, 1024, 6, 2),
    ("ResNet-18 128px / 64px local", "torchvision/resnet18", 128, 64, 512, 3, 1),
    ("ViT-Tiny/16 224px / 96px local", "timm/vit_tiny_patch16_224", 224, 96, 256, 2, 1),
]


def settings(method: str, quick: bool) -> list[Setting]:
    if method == "simclr":
        return [
            Setting("32px", 32, 256, 2560 if quick else 10000, 1 if quick else 2),
            Setting("128px", 128, 64, 512 if quick else 2048, 1),
        ]
    chosen = []
    for name, model, size, local, images, steps, warmup in DINO_SETTINGS:
        if quick:
            images, steps, warmup = max(64, images // 8), 1, 1
        chosen.append(Setting(name, size, 64, images, 1, "dino", local, model, steps, warmup))
    return chosen


def model_args(setting: Setting) -> dict[str, bool]:
    """A timm ViT takes DINO's smaller local views only when built for any input size."""
    return {"dynamic_img_size": True} if setting.model.startswith("timm/vit") else {}


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
    out = root / setting.slug
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


def source_env(source: Path, method: str = "simclr") -> dict[str, str]:
    """Environment that runs ssl-core and the method's plugin from the checkout ``source``:
    its folders come first on the path, before this environment's editable installs."""
    paths = [source / "src", source / "plugins" / method / "src"]
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
    env = source_env(source, setting.method) if source is not None else None
    command = [
        str(Path(sys.executable).with_name("ssl")),
        "pretrain",
        f"out={out}",
        f"data={data}",
        f"model={setting.model}",
        f"method={setting.method}",
        f"epochs={setting.epochs}",
        f"batch_size={setting.batch_size}",
        f"precision={precision}",
        "overwrite=true",
        f"transform_args.image_size={setting.image_size}",
        "accelerator=cpu",
        f"compile={str(compile_model).lower()}",
    ]
    if setting.local_size is not None:
        command += [
            f"transform_args.local_image_size={setting.local_size}",
            f"transform_args.num_local_views={LOCAL_VIEWS}",
        ]
    command += [
        f"model_args.{key}={str(value).lower()}" for key, value in model_args(setting).items()
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


# The arguments go over as a Python literal: LightlyTrain wants tuples for image sizes.
LIGHTLY_SCRIPT = """
import ast, sys, lightly_train
from lightly_train._commands.train_helpers import get_precision
out, data, arguments = sys.argv[1:4]
lightly_train.pretrain(out=out, data=data, accelerator="cpu", devices=1, overwrite=True,
    loggers={"tensorboard": None}, **ast.literal_eval(arguments))
print("lightly precision:", get_precision(ast.literal_eval(arguments).get("precision", "auto")))
"""


def lightly_arguments(setting: Setting) -> dict:
    """LightlyTrain's pretrain arguments for the setting: SimCLR in float32 (as our runs
    were first compared), DINO at LightlyTrain's default precision."""
    size = (setting.image_size, setting.image_size)
    arguments: dict = {
        "model": setting.model,
        "method": setting.method,
        "epochs": setting.epochs,
        "batch_size": setting.batch_size,
        "transform_args": {"image_size": size},
    }
    if setting.local_size is None:
        return {**arguments, "precision": "32-true"}
    local = {"num_views": LOCAL_VIEWS, "view_size": (setting.local_size, setting.local_size)}
    arguments["transform_args"]["local_view"] = local
    return arguments


def lightly(setting: Setting, data: Path, out: Path, python: str) -> dict:
    command = [python, "-c", LIGHTLY_SCRIPT, str(out), str(data), repr(lightly_arguments(setting))]
    wall, peak, output = run_measured(command, env={"LIGHTLY_TRAIN_EVENTS_DISABLED": "1"})
    images = setting.epochs * (setting.images // setting.batch_size) * setting.batch_size
    return {
        "wall": wall,
        "peak_rss": peak,
        "e2e_ips": images / wall,
        "precision": lightly_precision(output),
    }


def lightly_precision(output: str) -> str:
    """The precision LightlyTrain chose, as LIGHTLY_SCRIPT prints it."""
    printed = re.findall(r"^lightly precision: (\S+)", output, re.MULTILINE)
    return printed[-1] if printed else "?"


def build_network(setting: Setting, device: Any) -> tuple[Any, bool, Any, Any]:
    """The method's module as ``ssl pretrain`` builds it, through the public API only; whether
    it is a conv net; the method's optimiser settings; the RunInfo it was built for."""
    import torch

    import ssl_core

    backbone = ssl_core.build_backbone(setting.model, **model_args(setting))
    method_cls = ssl_core.get_method(setting.method)
    method = method_cls(method_cls.args_model())
    run = ssl_core.RunInfo(
        epochs=setting.epochs,
        steps_per_epoch=setting.images // setting.batch_size,
        global_batch_size=setting.batch_size,
        device=str(device),
    )
    # "auto" arguments that depend on the run (DINO's output_dim) as the run settles them.
    if hasattr(method, "resolve_auto"):
        method = method_cls(method.resolve_auto(run))
    network = method.build(backbone, run)
    conv = any(isinstance(m, torch.nn.Conv2d) for m in backbone.modules())
    return network.to(device), conv, method_cls.default_optimizer, run


def ceiling(
    setting: Setting,
    precision: str,
    steps: int | None = None,
    model: str | None = None,
    device_name: str = "cpu",
) -> float:
    """Images/s of forward + backward + step on synthetic tensors (no data loading), with
    the method's hooks and gradient clipping where the training step has them."""
    import torch

    from ssl_core.train.optim import build_optimizer
    from ssl_core.train.precision import autocast

    torch.manual_seed(0)
    device = torch.device(device_name)
    if model is not None:
        setting = dataclasses.replace(setting, model=model)
    network, conv, optim_args, run = build_network(setting, device)
    # Channels-last for conv nets (a ViT's patch embedding counts), as the training loop.
    memory_format = torch.channels_last if conv else torch.contiguous_format
    network = network.to(memory_format=memory_format)
    optimizer = build_optimizer(network, optim_args, setting.batch_size)
    sizes = [setting.image_size] * 2 + [setting.local_size or 0] * (
        LOCAL_VIEWS if setting.local_size else 0
    )
    views = [
        torch.randn(setting.batch_size, 3, size, size, device=device).contiguous(
            memory_format=memory_format
        )
        for size in sizes
    ]
    hooks = {
        name: getattr(network, name, lambda *_: None)
        for name in (
            "on_train_start",
            "on_before_forward",
            "on_before_optimizer_step",
            "on_after_optimizer_step",
        )
    }
    hooks["on_train_start"](run)

    # The order of ssl_core.train.step.TrainStep.
    def step(index: int) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        hooks["on_before_forward"](index)
        with autocast(precision, device):
            output = network(views)
        loss = output[0] if isinstance(output, tuple) else output  # StepOutput or the loss
        loss.backward()
        if optim_args.gradient_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(network.parameters(), optim_args.gradient_clip_norm)
        hooks["on_before_optimizer_step"](index, optimizer)
        optimizer.step()
        hooks["on_after_optimizer_step"](index)
        return loss

    steps = steps or setting.ceiling_steps
    warmup = setting.ceiling_warmup
    for index in range(warmup):
        step(index)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for index in range(warmup, warmup + steps):
        loss = step(index)
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


def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=["simclr", "dino"], default="simclr")
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
        choices=["bf16-mixed", "32-true", "auto"],
        help="precisions to measure (bf16 is emulated, and slow, on CPUs without it); "
        "default: bf16-mixed and 32-true for SimCLR, auto (each tool's default) for DINO",
    )
    return parser.parse_args()


def default_precisions(method: str) -> list[str]:
    return ["bf16-mixed", "32-true"] if method == "simclr" else ["auto"]


def resolved_precision(precision: str) -> str:
    """What ``precision=auto`` means on this machine's CPU (the ceiling needs the value)."""
    import torch

    from ssl_core.train.precision import resolve_precision

    return resolve_precision(precision, torch.device("cpu"))


def compile_precision(precisions: list[str]) -> str:
    """--compile runs bf16 where bf16 is measured, else the one precision that is."""
    return "bf16-mixed" if "bf16-mixed" in precisions else precisions[0]


def measure_setting(
    options: argparse.Namespace,
    setting: Setting,
    precisions: list[str],
    root: Path,
    baseline: Path | None,
) -> dict:
    data = make_dataset(setting, root / "data")
    row: dict = {"setting": setting}
    for precision in precisions:
        # This machine's speed drifts over minutes (shared cores): the ceiling and
        # the baseline are measured right before and right after our run, averaged.
        before = ceiling(setting, resolved_precision(precision))
        if baseline is not None:
            base_before = ours(
                setting, data, root / f"base-{setting.slug}", precision, source=baseline
            )
        row[f"ours_{precision}"] = ours(setting, data, root / f"ours-{setting.slug}", precision)
        if baseline is not None:
            base_after = ours(
                setting, data, root / f"base-{setting.slug}", precision, source=baseline
            )
            row[f"baseline_{precision}"] = (base_before, base_after)
        after = ceiling(setting, resolved_precision(precision))
        row[f"ceiling_{precision}"] = (before + after) / 2
        row[f"ceiling_spread_{precision}"] = abs(before - after) / 2
        print(setting.name, precision, row[f"ours_{precision}"], before, after, flush=True)
    if options.compile:
        row["compiled"] = ours(
            setting,
            data,
            root / f"ours-{setting.slug}",
            compile_precision(precisions),
            compile_model=True,
        )
        print(setting.name, "compiled", row["compiled"], flush=True)
    if options.lightly_python:
        row["lightly"] = lightly(setting, data, root / f"lt-{setting.slug}", options.lightly_python)
        print(setting.name, "lightly", row["lightly"], flush=True)
    return row


def command_line(options: argparse.Namespace, precisions: list[str]) -> str:
    shown_precision = precisions != default_precisions(options.method) and (
        options.method != "simclr" or len(precisions) < 2
    )
    return (
        f"`python benchmarks/bench.py"
        f"{' --method ' + options.method if options.method != 'simclr' else ''}"
        f"{' --quick' if options.quick else ''}"
        f"{' --compile' if options.compile else ''}"
        f"{f' --baseline {options.baseline}' if options.baseline else ''}"
        f"{' --precision ' + ' '.join(precisions) if shown_precision else ''}`"
    )


def what_ran(method: str) -> str:
    """The header's description of the models, method and data."""
    if method == "simclr":
        return (
            "torchvision ResNet-18 + SimCLR (head 2048-128), CIFAR-10 JPEGs (upscaled for 128 px)"
        )
    return (
        f"DINO (2 global + {LOCAL_VIEWS} local views; head 2048-256 to output_dim auto, 1024 "
        f"in both tools at these image counts; the teacher on the global views) on "
        f"torchvision ResNet-18 and timm ViT-Tiny/16 (`dynamic_img_size`), CIFAR-10 JPEGs "
        f"upscaled to the global size; each tool at its default precision (ours "
        f"`precision=auto`, LightlyTrain's default; the column says what each chose), "
        f"optimiser and schedules (ours AdamW with clipping, LightlyTrain SGD)"
    )


def precision_cell(method: str, precision: str, o: dict, lt: dict | None) -> str:
    if method == "simclr":
        return precision
    chosen = precision if precision == o["precision"] else f"{precision} → {o['precision']}"
    return f"{chosen} / {lt['precision'] if lt else 'n/a'}"


def main_table(options: argparse.Namespace, rows: list[dict], precisions: list[str]) -> list[str]:
    import torch
    import torchvision

    precision_header = "precision" if options.method == "simclr" else "precision ours / LT"
    lines = [
        f"## {datetime.date.today().isoformat()}: "
        f"{'' if options.method == 'simclr' else 'DINO, '}{machine()}",
        "",
        f"torch {torch.__version__}, torchvision {torchvision.__version__}; "
        f"{command_line(options, precisions)}; {what_ran(options.method)}, "
        f"`num_workers=auto`. Loop = images/s inside the training loop; end to end = all "
        f"trained images / wall time of the whole command (start-up, decoding, export "
        f"included). Ceiling = forward+backward+step on random tensors, same precision, "
        f"measured right before and after each of our runs (mean ± half the difference: "
        f"this machine's speed drifts by minutes). ours/LightlyTrain compares end to end.",
        "",
        f"| setting | {precision_header} | ours loop img/s | ceiling img/s | ours/ceiling | ours "
        "end-to-end img/s | LightlyTrain end-to-end img/s | ours/LightlyTrain (e2e) | peak RSS "
        "ours / LT |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    # DINO's rates are a few images/s on a CPU: one decimal.
    digits = 0 if options.method == "simclr" else 1

    def rate(value: float) -> str:
        return f"{value:.{digits}f}"

    for row in rows:
        s = row["setting"]
        lt = row.get("lightly")
        for precision in precisions:
            o, c = row[f"ours_{precision}"], row[f"ceiling_{precision}"]
            lt_ips = rate(lt["e2e_ips"]) if lt else "n/a"
            ratio = f"{o['e2e_ips'] / lt['e2e_ips']:.2f}" if lt else "n/a"
            rss = (
                f"{o['peak_rss'] / 2**30:.2f} / {lt['peak_rss'] / 2**30:.2f} GiB"
                if lt
                else (f"{o['peak_rss'] / 2**30:.2f} GiB / n/a")
            )
            spread = row[f"ceiling_spread_{precision}"]
            lines.append(
                f"| {s.name}, batch {s.batch_size}, {s.images} images × {s.epochs} epochs | "
                f"{precision_cell(options.method, precision, o, lt)} | {rate(o['loop_ips'])} | "
                f"{rate(c)} ± {rate(spread)} | {o['loop_ips'] / c:.2f} | "
                f"{rate(o['e2e_ips'])} | {lt_ips} | {ratio} | {rss} |"
            )
    lines.append("")
    return lines


def compile_table(rows: list[dict], precision: str) -> list[str]:
    lines = [
        f"torch.compile (`compile=True`), {precision}; steady = images/s after the first 5 "
        "steps (the compile happens in the first):",
        "",
        "| setting | eager steady img/s | compiled steady img/s | compiled / eager | "
        "end to end, compiled / eager |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        eager, compiled = row[f"ours_{precision}"], row["compiled"]
        lines.append(
            f"| {row['setting'].name} | {eager['steady_ips']:.0f} | "
            f"{compiled['steady_ips']:.0f} | {compiled['steady_ips'] / eager['steady_ips']:.2f}"
            f" | {compiled['e2e_ips'] / eager['e2e_ips']:.2f} |"
        )
    lines.append("")
    return lines


def prepend_results(report: str) -> None:
    """RESULTS.md holds the newest section first, under its header (every script under
    benchmarks/ that writes there adds its section through this)."""
    results = ROOT / "benchmarks" / "RESULTS.md"
    header = "# Benchmark results\n\nNewest first. Each section is one run of one script under "
    header += "benchmarks/ (named in it).\n\n"
    text = results.read_text() if results.exists() else header
    head, found, sections = text.partition("\n## ")
    kept_head = head + "\n" if found else header
    results.write_text(kept_head + report.rstrip("\n") + "\n\n" + found.lstrip("\n") + sections)


def main() -> None:
    options = parse_options()
    precisions = options.precision or default_precisions(options.method)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        baseline = checkout(options.baseline, root / "baseline") if options.baseline else None
        for setting in settings(options.method, options.quick):
            rows.append(measure_setting(options, setting, precisions, root, baseline))
        if baseline is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", baseline])

    lines = main_table(options, rows, precisions)
    if baseline is not None:
        lines += baseline_table(rows, precisions, options.baseline)
    if options.compile:
        lines += compile_table(rows, compile_precision(precisions))
    report = "\n".join(lines)
    print(report)
    if options.write:
        prepend_results(report)


if __name__ == "__main__":
    main()
