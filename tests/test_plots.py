"""Plots of a run's metrics: drawn at the end of every run, redrawn by ``ssl plot`` (also
for an interrupted run), and without matplotlib one line that says how to get them."""

from __future__ import annotations

import importlib.util
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import ssl_core
from conftest import TINY_RESNET, pretrain_args, run_ssl
from ssl_core.demo import make_textures
from ssl_core.plots import read_series
from ssl_core.train import run_folder

needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None, reason="the plots extra is not installed"
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HINT = "pip install 'ssl-core[plots]'"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG, checked to be one: the signature, then the IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    assert len(data) > 5_000, f"{path} is {len(data)} bytes: an empty figure?"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("textures")
    make_textures(4, seed=0, folder=folder)  # 20 PNGs, 32×32
    return folder


@needs_matplotlib
def test_a_finished_run_has_its_plots(images, tmp_path):
    out = tmp_path / "run"
    ssl_core.pretrain(
        out=out,
        data=images,
        model="torchvision/resnet18",
        method_args={"hidden_dim": 64, "output_dim": 16},
        transform_args={"image_size": 32},
        batch_size=8,
        epochs=1,
        num_workers=0,
        accelerator="cpu",
        precision="32-true",
    )
    for name in ("overview.png", "loss.png", "lr.png"):
        width, height = png_size(out / "plots" / name)
        assert width >= 600 and height >= 300
    assert sorted(p.name for p in (out / "plots").iterdir()) == [
        "loss.png",
        "lr.png",
        "overview.png",
    ]
    assert f"Plots: {out / 'plots'}" in (out / "train.log").read_text()
    assert run_folder.foreign_paths(out) == []  # --overwrite may replace this run


def interrupted_metrics(out: Path) -> None:
    """A DINO-like run stopped while writing its 41st row, with two kNN evaluations."""
    out.mkdir()
    rows = []
    for step in range(1, 41):
        row = {"epoch": (step - 1) // 10 + 1, "step": step, "loss": 5 - step / 20, "lr": 0.01}
        row |= {"images_per_second": 100.0, "momentum": 0.99 + step / 4000, "teacher_temp": 0.04}
        rows.append(json.dumps(row))
        if step % 20 == 0:
            rows.append(json.dumps({"epoch": step // 10, "step": step, "knn_top1": step / 50}))
    rows[5] = rows[5].replace('"loss": 4.7', '"loss": null')  # a NaN loss is written as null
    (out / "metrics.jsonl").write_text("\n".join(rows) + '\n{"epoch": 5, "step": 41, "lo')


@needs_matplotlib
def test_ssl_plot_redraws_an_interrupted_run_without_torch(tmp_path):
    out = tmp_path / "stopped"
    interrupted_metrics(out)
    series = read_series(out / "metrics.jsonl")
    assert [s for s, _ in series["loss"]] == [s for s in range(1, 41) if s != 6]
    assert series["knn_top1"] == [(20, 0.4), (40, 0.8)]
    assert "images_per_second" not in series and "epoch" not in series

    # As a new process, to see what it imports: redrawing needs matplotlib, not torch.
    probe = (
        "import sys\nfrom ssl_core.cli import app\n"
        f"sys.argv = ['ssl', 'plot', {str(out)!r}]\n"
        "try:\n    app()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "False", result.stdout
    assert "Wrote 6 plots" in result.stdout
    for name in ("overview", "loss", "lr", "momentum", "teacher_temp", "knn"):
        png_size(out / "plots" / f"{name}.png")


def test_ssl_plot_without_metrics_exits_2(tmp_path):
    result = run_ssl("plot", str(tmp_path))
    assert result.returncode == 2
    assert "has no metrics.jsonl" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "plots").exists()


def test_a_run_without_matplotlib_says_once_how_to_get_plots(images, tmp_path):
    stub = tmp_path / "stub"
    (stub / "matplotlib").mkdir(parents=True)
    (stub / "matplotlib" / "__init__.py").write_text(
        "raise ImportError('matplotlib is hidden by a test stub')\n"
    )
    out = tmp_path / "run"
    args = pretrain_args(out=out, data=images, batch_size=8, epochs=1, **TINY_RESNET)
    result = run_ssl(*args, extra_path=[stub])
    assert result.returncode == 0, result.stderr
    assert (result.stdout + result.stderr).count(HINT) == 1
    assert (out / "train.log").read_text().count(HINT) == 1
    assert not (out / "plots").exists()
