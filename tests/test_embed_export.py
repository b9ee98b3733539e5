"""``embed`` and ``export`` on a real run: embeddings in file order with unreadable files
skipped, the three output formats, and TorchScript and ONNX files that compute what the
eager model computes."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import ssl_core
from conftest import WIDE, run_ssl
from ssl_core.cli import app
from ssl_core.eval.loading import load_backbone
from use_support import make_labelled_images, simclr_run

runner = CliRunner()
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Labelled PNGs plus two unreadable files; one class folder holds a 48×40 JPEG (the
    evaluation crop must resize and centre it) in a nested folder."""
    from PIL import Image

    root = make_labelled_images(tmp_path_factory.mktemp("images"), per_class=5, seed=0)
    (root / "blue" / "empty.png").write_bytes(b"")
    (root / "green" / "truncated.png").write_bytes((root / "green" / "000.png").read_bytes()[:60])
    (root / "orange" / "deeper").mkdir()
    Image.new("RGB", (40, 48), (200, 120, 20)).save(root / "orange" / "deeper" / "tall.jpg")
    return root


@pytest.fixture(scope="module")
def run() -> Path:
    return simclr_run()


def readable(root: Path) -> list[str]:
    """The relative paths of the images expected in the output, sorted as the scan sorts."""
    bad = {"blue/empty.png", "green/truncated.png"}
    names = [p.relative_to(root).as_posix() for p in sorted(root.rglob("*")) if p.is_file()]
    return [name for name in names if name not in bad]


def reference_features(network: torch.nn.Module, root: Path, names: list[str]) -> torch.Tensor:
    """Features computed here from torchvision's own ops: resize the shorter side to 32,
    centre crop 32, normalise with ImageNet's statistics, float32 forward."""
    from torchvision.io import decode_image
    from torchvision.transforms.v2 import functional as F

    batch = []
    for name in names:
        image = decode_image(str(root / name))
        image = F.center_crop(F.resize(image, [32], antialias=True), [32, 32])
        batch.append(image)
    x = (torch.stack(batch).float() / 255 - MEAN) / STD
    with torch.no_grad():
        return network.eval()(x)


def test_embed_npy_one_row_per_readable_image_in_file_order(run, images, tmp_path):
    import numpy as np

    out = tmp_path / "emb.npy"
    result = ssl_core.embed(run, images, out, progress=False)
    names = readable(images)
    assert len(names) == 21 and "orange/deeper/tall.jpg" in names
    assert (tmp_path / "emb.paths.txt").read_text().splitlines() == names
    assert result.paths_file == tmp_path / "emb.paths.txt"
    array = np.load(out)
    assert array.shape == (21, 512) and array.dtype == np.float32
    assert (result.images, result.dim) == (21, 512)
    assert sorted((Path(s.path).parent.name, Path(s.path).name) for s in result.skipped) == [
        ("blue", "empty.png"),
        ("green", "truncated.png"),
    ]
    expected = reference_features(load_backbone(run).network, images, names)
    # Batches of another size and channels-last convolutions change float32 sums a little.
    torch.testing.assert_close(torch.from_numpy(array), expected, rtol=1e-3, atol=1e-3)


def test_embed_csv_and_parquet_hold_the_same_rows(run, images, tmp_path):
    import numpy as np

    ssl_core.embed(run, images, tmp_path / "emb.npy", progress=False)
    array = np.load(tmp_path / "emb.npy")
    names = (tmp_path / "emb.paths.txt").read_text().splitlines()
    ssl_core.embed(run, images, tmp_path / "emb.csv", progress=False)
    with open(tmp_path / "emb.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:3] == ["path", "e0", "e1"] and len(rows[0]) == 513
    assert [row[0] for row in rows[1:]] == names
    np.testing.assert_array_equal(np.array([row[1:] for row in rows[1:]], dtype=np.float32), array)
    try:
        import pyarrow.parquet as pq
    except ImportError:
        with pytest.raises(ssl_core.ConfigError, match="needs pyarrow.*pip install pyarrow"):
            ssl_core.embed(run, images, tmp_path / "emb.parquet", progress=False)
        assert not (tmp_path / "emb.parquet").exists()
    else:
        ssl_core.embed(run, images, tmp_path / "emb.parquet", progress=False)
        table = pq.read_table(tmp_path / "emb.parquet")
        assert table.column("path").to_pylist() == names
        np.testing.assert_array_equal(np.array(table.column("embedding").to_pylist()), array)


def test_ssl_embed_reports_what_it_wrote_and_skipped(run, images, tmp_path):
    out = tmp_path / "emb.csv"
    args = ["embed", str(run), "--data", str(images), "--out", str(out)]
    result = runner.invoke(app, args, env=WIDE)
    assert result.exit_code == 0, result.output
    assert f"Wrote 21 embeddings of dimension 512 to {out}" in result.stdout
    assert "Skipped 2 unreadable image file(s)" in result.stderr
    assert "empty.png (empty file)" in result.stderr
    again = runner.invoke(app, args, env=WIDE)
    assert again.exit_code == 2 and again.stderr.startswith("Error:")
    assert "exists already" in again.stderr and "--overwrite" in again.stderr
    assert runner.invoke(app, [*args, "--overwrite"], env=WIDE).exit_code == 0
    unknown = runner.invoke(app, [*args[:-1], str(tmp_path / "emb.txt")], env=WIDE)
    assert unknown.exit_code == 2 and ".npy, .csv, .parquet" in unknown.stderr


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_export_computes_what_the_eager_model_computes(run, images, tmp_path):
    out = tmp_path / "backbone.torchscript.pt"
    result = ssl_core.export(run, out, "torchscript")
    assert result.out == out and result.max_abs_difference is not None
    scripted = torch.jit.load(str(out))
    eager = load_backbone(run).network
    names = readable(images)[:5]
    expected = reference_features(eager, images, names)
    x = reference_inputs(images, names)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), expected, rtol=1e-5, atol=1e-5)
        # The batch axis is free: one image gives the first row (float32 sums of another
        # batch size differ a little).
        torch.testing.assert_close(scripted(x[:1]), expected[:1], rtol=1e-3, atol=1e-3)


def reference_inputs(root: Path, names: list[str]) -> torch.Tensor:
    from torchvision.io import decode_image
    from torchvision.transforms.v2 import functional as F

    batch = [
        F.center_crop(F.resize(decode_image(str(root / n)), [32], antialias=True), [32, 32])
        for n in names
    ]
    return (torch.stack(batch).float() / 255 - MEAN) / STD


def test_onnx_export_computes_what_the_eager_model_computes(run, images, tmp_path):
    import onnxruntime  # the test extra installs it: this test must not pass without a check

    out = tmp_path / "backbone.onnx"
    result = ssl_core.export(run / "checkpoints" / "last.ckpt", out, "onnx")
    assert result.checked.startswith("run with onnxruntime")
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    names = readable(images)[:7]
    x = reference_inputs(images, names)
    expected = reference_features(load_backbone(run).network, images, names)
    for batch in (x, x[:2]):  # any batch size
        (got,) = session.run(None, {"images": batch.numpy()})
        torch.testing.assert_close(
            torch.from_numpy(got), expected[: len(batch)], rtol=1e-3, atol=1e-4
        )


def test_state_dict_export_is_the_runs_own_export(run, tmp_path):
    import torchvision

    out = tmp_path / "resnet18.pt"
    result = runner.invoke(
        app, ["export", str(run), "--format", "state_dict", "--out", str(out)], env=WIDE
    )
    assert result.exit_code == 0, result.output
    mine = torch.load(out, weights_only=True)
    theirs = torch.load(run / "exported_models" / "exported_last.pt", weights_only=True)
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    missing, unexpected = torchvision.models.resnet18().load_state_dict(mine, strict=False)
    assert sorted(missing) == ["fc.bias", "fc.weight"] and unexpected == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--format", "tflite"], "format must be one of state_dict, torchscript, onnx"),
        (["--checkpoint", "best"], "checkpoints/best.ckpt"),
        (["--checkpoint", "first"], "checkpoint must be 'last' or 'best'"),
        (["--overwrite-not"], "No such option"),
    ],
)
def test_export_mistakes_end_in_one_message_and_exit_2(run, tmp_path, args, expected):
    result = runner.invoke(app, ["export", str(run), "--out", str(tmp_path / "b.pt"), *args])
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert not (tmp_path / "b.pt").exists()


def test_export_refuses_to_overwrite_unless_asked(run, tmp_path):
    out = tmp_path / "b.onnx"
    out.write_text("keep me")
    args = ["export", str(run), "--format", "onnx", "--out", str(out)]
    result = runner.invoke(app, args, env=WIDE)
    assert result.exit_code == 2 and "exists already" in result.stderr
    assert out.read_text() == "keep me"
    result = runner.invoke(app, [*args, "--overwrite"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "onnxruntime" in result.stdout and out.stat().st_size > 1_000_000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_a_moved_export_without_its_config_is_refused_as_a_real_process(run, tmp_path):
    lone = shutil.copy(run / "exported_models" / "exported_last.pt", tmp_path / "lone.pt")
    process = run_ssl("export", str(lone), "--out", "x.onnx", cwd=tmp_path)
    assert process.returncode == 2, process.stderr
    assert process.stderr.startswith("Error:") and "config.json" in process.stderr
    assert "Traceback" not in process.stderr


HELP_PROBE = """
import sys
from ssl_core.cli import app
for command in ("evaluate", "embed", "export"):
    sys.argv = ["ssl", command, "--help"]
    try:
        app()
    except SystemExit:
        pass
print("HEAVY=" + ",".join(m for m in ("torch", "numpy", "onnx") if m in sys.modules))
"""


def test_help_of_the_three_commands_does_not_import_torch():
    result = subprocess.run([sys.executable, "-c", HELP_PROBE], capture_output=True, text=True)
    assert "HEAVY=\n" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]
    for text in ("--train-data", "--temperature", "--data", "--format", "--overwrite"):
        assert text in result.stdout


def test_results_are_json(run, images, tmp_path):
    result = ssl_core.embed(run, images, tmp_path / "e.npy", progress=False)
    data = json.loads(json.dumps(result.to_json()))
    assert data["images"] == 21 and len(data["skipped"]) == 2
