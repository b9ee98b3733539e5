"""Does a change move SimCLR's numbers? This code against an earlier commit, same run.

Runs the same short SimCLR pretraining (ResNet-18, 32 px CIFAR-10, fixed seed) with this
checkout and with ``--baseline REV`` (checked out into a temporary git worktree and put
first on the path), on one process in float32 and in bf16 autocast, and on
two processes; then compares the per-step losses in metrics.jsonl and every tensor of the
final checkpoint. A refactoring of the engine should leave them bit-identical.

    python benchmarks/same_numbers.py --baseline HEAD~3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import CIFAR, ROOT, Setting, checkout, make_dataset, source_env

RUNS = {  # name: extra ssl pretrain arguments
    "1 process, 32-true": ["precision=32-true", "epochs=2"],
    "1 process, bf16-mixed": ["precision=bf16-mixed", "epochs=2"],
    "2 processes, 32-true": ["precision=32-true", "epochs=1", "devices=2"],
}


def pretrain(out: Path, data: Path, extra: list[str], source: Path | None) -> None:
    env = {**os.environ, **(source_env(source) if source is not None else {})}
    command = [
        str(Path(sys.executable).with_name("ssl")),
        "pretrain",
        f"out={out}",
        f"data={data}",
        "model=torchvision/resnet18",
        "method=simclr",
        "batch_size=64",
        "num_workers=0",
        "seed=5",
        "accelerator=cpu",
        "transform_args.image_size=32",
        "method_args.hidden_dim=128",
        "method_args.output_dim=32",
        *extra,
    ]
    subprocess.run(command, check=True, env=env, capture_output=True)


def compare(ours: Path, theirs: Path) -> tuple[str, str]:
    """(per-step losses, final weights): 'identical' or what differs."""
    import torch

    def losses(out: Path) -> list[float]:
        lines = (out / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line)["loss"] for line in lines]

    a, b = losses(ours), losses(theirs)
    worst = max(abs(x - y) for x, y in zip(a, b, strict=True))
    loss_note = "identical" if a == b else f"differ (largest gap {worst:.3g})"
    model_a = torch.load(ours / "checkpoints/last.ckpt", weights_only=True)["model"]
    model_b = torch.load(theirs / "checkpoints/last.ckpt", weights_only=True)["model"]
    differing = [k for k in model_a if k not in model_b or not torch.equal(model_a[k], model_b[k])]
    weights_note = (
        "identical"
        if not differing and model_a.keys() == model_b.keys()
        else (f"{len(differing)} of {len(model_a)} tensors differ")
    )
    return loss_note, weights_note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, metavar="REV", help="e.g. HEAD~3")
    options = parser.parse_args()
    if not CIFAR.is_dir():
        sys.exit(f"needs the CIFAR-10 images at {CIFAR}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = make_dataset(Setting("subset", 32, 64, 400, 1), root / "data")
        baseline = checkout(options.baseline, root / "baseline")
        try:
            print("| run | per-step losses | final weights |\n| --- | --- | --- |")
            for name, extra in RUNS.items():
                slug = name.replace(" ", "").replace(",", "-")
                pretrain(root / f"ours-{slug}", data, extra, None)
                pretrain(root / f"base-{slug}", data, extra, baseline)
                losses, weights = compare(root / f"ours-{slug}", root / f"base-{slug}")
                print(f"| {name} | {losses} | {weights} |", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", baseline])


if __name__ == "__main__":
    main()
