"""Does our DINO learn as well as LightlyTrain's? Pretrain with each on the same data, model,
views, batch and epochs, and compare kNN top-1 of the two exported backbones.

Both train torchvision ResNet-18 on all 10,000 CIFAR-10 JPEGs of ../shared/data: two 32 px
global views and six 16 px local views per image, batch 256, each tool as a fresh process
at its own defaults otherwise (precision, optimiser, schedules, temperatures: the report
lists where they differ). Both export the teacher. kNN: k=20, cosine, temperature 0.1, by
5-fold cross-validation over the same images, as `accuracy.py --dataset cifar-all` (labels
never seen by pretraining), beside a randomly initialised backbone.
Run: `python benchmarks/dino_quality.py --lightly-python /path/to/python --epochs 8 [--write]`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from accuracy import KnnData, all_cifar, knn_of
from bench import LIGHTLY_SCRIPT, lightly_precision, machine, prepend_results, run_measured

GLOBAL_SIZE, LOCAL_SIZE, LOCAL_VIEWS = 32, 16, 6

# Where LightlyTrain 0.18's dino defaults differ from ours, as read in its source
# (lightly_train/_methods/dino/dino.py), at fewer than 20k images.
DIFFERENCES = (
    "optimiser: ours AdamW, lr 5e-4 × batch/256, weight decay 0.04 rising to 0.4, "
    "gradient clipping at 3; LightlyTrain SGD (momentum 0.9), lr 0.03 × batch/256, weight "
    "decay 1e-4 constant, clipping at 3. Teacher temperature: ours 0.04 → 0.07; "
    "LightlyTrain 0.02 throughout. Teacher momentum: ours 0.996 → 1, LightlyTrain 0.99 → 1. "
    "Last layer frozen: ours the first epoch, LightlyTrain the first 1250 steps (the whole "
    "of a run this short). lr warmup: ours 10 epochs, LightlyTrain 12,500 steps, both at "
    "most a tenth of the run. Output dim 1024 and student temperature 0.1 in both."
)


@dataclass
class Run:
    tool: str
    seed: int
    exported: Path
    seconds: float
    peak_rss: int
    precision: str
    loop_ips: float | None = None  # LightlyTrain reports none


def ours(tmp: Path, data: Path, options: argparse.Namespace, seed: int) -> Run:
    out = tmp / f"ours-seed{seed}"
    command = [
        str(Path(sys.executable).with_name("ssl")),
        "pretrain",
        f"out={out}",
        f"data={data}",
        "model=torchvision/resnet18",
        "method=dino",
        f"epochs={options.epochs}",
        f"batch_size={options.batch_size}",
        f"seed={seed}",
        f"transform_args.image_size={GLOBAL_SIZE}",
        f"transform_args.local_image_size={LOCAL_SIZE}",
        f"transform_args.num_local_views={LOCAL_VIEWS}",
        "accelerator=cpu",
        "overwrite=true",
    ]
    wall, peak, _ = run_measured(command)
    summary = json.loads((out / "summary.json").read_text())
    exported = out / "exported_models" / "exported_last.pt"
    return Run(
        "ssl-core", seed, exported, wall, peak, summary["precision"], summary["images_per_second"]
    )


def lightly(tmp: Path, data: Path, options: argparse.Namespace, seed: int) -> Run:
    out = tmp / f"lightly-seed{seed}"
    arguments = {
        "model": "torchvision/resnet18",
        "method": "dino",
        "epochs": options.epochs,
        "batch_size": options.batch_size,
        "seed": seed,
        "transform_args": {
            "image_size": (GLOBAL_SIZE, GLOBAL_SIZE),
            "local_view": {"num_views": LOCAL_VIEWS, "view_size": (LOCAL_SIZE, LOCAL_SIZE)},
        },
    }
    command = [options.lightly_python, "-c", LIGHTLY_SCRIPT, str(out), str(data), repr(arguments)]
    wall, peak, output = run_measured(command, env={"LIGHTLY_TRAIN_EVENTS_DISABLED": "1"})
    # Its default export: the teacher's torchvision state_dict, classifier included.
    exported = out / "exported_models" / "exported_last.pt"
    return Run("LightlyTrain", seed, exported, wall, peak, lightly_precision(output))


def report(
    options: argparse.Namespace, data: KnnData, random_init: float, rows: list[tuple[Run, float]]
) -> str:
    seeds = " ".join(str(seed) for seed in options.seeds)
    limit = f" --per-class {options.per_class}" if options.per_class else ""
    lines = [
        f"## {datetime.date.today().isoformat()}: DINO vs LightlyTrain's dino, kNN top-1",
        "",
        f"{machine()}, torch {torch.__version__}. `python benchmarks/dino_quality.py "
        f"--epochs {options.epochs} --batch-size {options.batch_size} --seeds {seeds}{limit}`: "
        f"torchvision ResNet-18, {len(data.bank)} CIFAR-10 JPEGs, 2 global views of "
        f"{GLOBAL_SIZE} px and {LOCAL_VIEWS} local views of {LOCAL_SIZE} px, each tool's "
        f"defaults otherwise; kNN top-1 (k=20, cosine) of the exported teacher "
        f"{data.describe()}. Random initialisation: {random_init:.1%}.",
        "",
        "| tool | seed | precision | loop img/s | kNN top-1 | wall seconds | peak RSS |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run, accuracy in rows:
        ips = f"{run.loop_ips:.0f}" if run.loop_ips is not None else "n/a"
        lines.append(
            f"| {run.tool} | {run.seed} | {run.precision} | {ips} | {accuracy:.1%} | "
            f"{run.seconds:.0f} | {run.peak_rss / 2**30:.2f} GiB |"
        )
    lines += ["", f"Defaults that differ (LightlyTrain 0.18, read in its source): {DIFFERENCES}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--lightly-python", help="a Python with lightly_train installed")
    parser.add_argument(
        "--per-class", type=int, help="only the first N images of each class (a smoke run)"
    )
    parser.add_argument(
        "--write", action="store_true", help="add to benchmarks/RESULTS.md, as bench.py does"
    )
    options = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = all_cifar(tmp / "train", options.per_class)
        torch.manual_seed(0)
        random_init = knn_of(None, data)
        print(f"random initialisation: kNN top-1 {random_init:.1%}", flush=True)
        tools = [ours] + ([lightly] if options.lightly_python else [])
        for seed in options.seeds:
            for tool in tools:
                run = tool(tmp, tmp / "train", options, seed)
                accuracy = knn_of(run.exported, data)
                rows.append((run, accuracy))
                print(f"{run.tool} seed {seed}: kNN top-1 {accuracy:.1%} ({run.seconds:.0f} s)")
    text = report(options, data, random_init, rows)
    print(text)
    if options.write:
        prepend_results(text)


if __name__ == "__main__":
    main()
