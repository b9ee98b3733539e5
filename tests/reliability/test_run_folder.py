"""The output folder: --overwrite deletes only what a run wrote, never the user's files; two
runs never share a folder; a full disk ends in one message and keeps the last checkpoint; a
tampered checkpoint is refused without running its code."""

from __future__ import annotations

import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import SSL_SCRIPT, WIDE, pretrain_args, run_ssl
from lifecycle_support import make_images
from ssl_core.errors import ConfigError
from ssl_core.train import run_dir, run_folder


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return make_images(tmp_path_factory.mktemp("images"), count=32, side=32)


def quick_run(out: Path | str, data: Path | str, **extra: object) -> list[str]:
    options = {
        "model": "torchvision/resnet18",
        "epochs": 1,
        "batch_size": 8,
        "transform_args": "image_size=32",
        "num_workers": 0,
        "accelerator": "cpu",
        **extra,
    }
    return pretrain_args(out=out, data=data, **options)


def files_of(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def make_run_folder(out: Path, *extra: str) -> Path:
    """A folder as a finished run leaves it, plus ``extra`` files of the user's."""
    for name in ("config.json", "train.log", "metrics.jsonl", "checkpoints/last.ckpt", *extra):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("x")
    (out / run_folder.MARKER).write_text("ssl-core")
    return out


def test_overwrite_of_a_project_folder_holding_config_json_deletes_nothing(images, tmp_path):
    """Finding: `--out . --overwrite` in a project folder emptied it, data included."""
    project = tmp_path / "project"
    shutil.copytree(images, project / "images")
    (project / "config.json").write_text('{"mine": true}')
    (project / "train.py").write_text("print('my code')")
    before = files_of(project)
    done = run_ssl(*quick_run(".", "images"), "--overwrite", cwd=project)
    assert done.returncode == 2
    assert "Refusing to overwrite" in done.stderr and "Traceback" not in done.stderr
    assert files_of(project) == before


CHECKS = [
    # (layout of out, data inside out?, expected words of the refusal or None when allowed)
    ("run", False, None),
    ("legacy-run", False, None),
    ("run+notes.txt", False, "notes.txt"),
    ("run+checkpoints/mine.txt", False, "checkpoints/mine.txt"),
    ("user-folder", False, "not an ssl-core run folder"),
    ("run", True, "it contains the data"),
]


@pytest.mark.parametrize(("layout", "data_inside", "refusal"), CHECKS)
def test_overwrite_deletes_only_what_a_run_wrote(layout, data_inside, refusal, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    if layout.startswith("run"):
        make_run_folder(out, *layout.split("+")[1:])
    elif layout == "legacy-run":  # written before runs had a marker
        make_run_folder(out)
        (out / run_folder.MARKER).unlink()
    else:
        (out / "config.json").write_text("{}")
        (out / "thesis.tex").write_text("years of work")
    data = out / "checkpoints" if data_inside else tmp_path / "images"
    before = files_of(out)
    if refusal is None:
        with run_folder.RunFolder(out, overwrite=True, resume=False, protected=[data]):
            run_folder.prepare(out, overwrite=True)
        assert sorted(p.name for p in out.iterdir()) == [run_folder.MARKER]
        return
    folder = run_folder.RunFolder(out, overwrite=True, resume=False, protected=[data])
    with pytest.raises(ConfigError, match="Refusing to overwrite") as info, folder:
        pass
    assert refusal in str(info.value)
    assert files_of(out) == before


@pytest.mark.parametrize("precious", ["cwd", "home"])
def test_overwrite_never_deletes_the_working_or_home_directory(precious, tmp_path, monkeypatch):
    out = make_run_folder(tmp_path / "out")
    (out / "inner").mkdir()
    if precious == "cwd":
        monkeypatch.chdir(out / "inner")
    else:
        monkeypatch.setenv("HOME", str(out))
    with pytest.raises(ConfigError, match="it contains"):
        run_folder.check(out, overwrite=True, resume=False)


def test_a_second_run_on_a_folder_in_use_is_refused(images, tmp_path):
    """Finding: a second run with --overwrite deleted a running run's folder."""
    out = tmp_path / "run"
    first = subprocess.Popen(
        [str(SSL_SCRIPT), *quick_run(out, images, epochs=50)],
        env={**os.environ, **WIDE},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 120
        while not (out / "metrics.jsonl").is_file() or not (out / "metrics.jsonl").read_text():
            assert first.poll() is None and time.time() < deadline, first.stderr
            time.sleep(0.05)
        for flag in ("--overwrite", "--resume"):
            second = run_ssl(*quick_run(out, images), flag)
            assert second.returncode == 2
            assert "in use by another run" in second.stderr, second.stderr
            assert f"process {first.pid}" in second.stderr
        assert first.poll() is None  # the first run goes on
        assert (out / "config.json").is_file()
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    assert first.returncode == 130


def _on_small_tmpfs(folder: Path, megabytes: int, command: list[str], then: str) -> list[str]:
    """``command`` in a private mount namespace with a small tmpfs on ``folder`` (a real
    full disk), then the shell command ``then`` there; its exit status is the command's."""
    script = (
        f"mount -t tmpfs -o size={megabytes}m tmpfs {shlex.quote(str(folder))} || exit 99; "
        f'"$@"; status=$?; {then}; exit $status'
    )
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *command]


def _can_mount_tmpfs(folder: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(_on_small_tmpfs(folder, 1, ["true"], "true"), capture_output=True)
    return probe.returncode == 0


SAVED_STEP = (
    "import sys, torch; "
    "print('saved step', torch.load(sys.argv[1], weights_only=True, mmap=True)['step'])"
)


def test_a_full_disk_ends_in_one_message_and_keeps_the_last_checkpoint(images, tmp_path):
    """The first checkpoint (about 100 MB for ResNet-18 with its optimiser state) fits, the
    second cannot be written beside it."""
    disk = tmp_path / "disk"
    disk.mkdir()
    out = disk / "run"
    command = [str(SSL_SCRIPT), *quick_run(out, images, checkpoint_every_steps=1)]
    environment = {**os.environ, **WIDE}
    if _can_mount_tmpfs(disk):
        check = (
            f"{shlex.quote(sys.executable)} -c {shlex.quote(SAVED_STEP)} {out / run_dir.CHECKPOINT}"
        )
        done = subprocess.run(
            _on_small_tmpfs(disk, 150, command, check),
            capture_output=True,
            text=True,
            env=environment,
        )
        assert "saved step 1" in done.stdout, done.stdout  # the last good checkpoint
        expected = "No space left on device"
    else:  # no mount namespaces here: a file size limit fails the checkpoint's write alike
        limit = 60 * 2**20

        def cap_file_size() -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        done = subprocess.run(
            command, capture_output=True, text=True, env=environment, preexec_fn=cap_file_size
        )
        expected = "File too large"
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, done.stderr
    assert "Could not write" in errors[0] and "last.ckpt" in errors[0] and expected in errors[0]


def test_a_checkpoint_carrying_code_is_refused_without_running_it(images, tmp_path):
    out = tmp_path / "run"
    done = run_ssl(*quick_run(out, images))
    assert done.returncode == 0, done.stderr
    proof = tmp_path / "pwned"
    saved = torch.load(out / run_dir.CHECKPOINT, weights_only=True)
    saved["config"]["note"] = Payload(str(proof))
    torch.save(saved, out / run_dir.CHECKPOINT)
    resumed = run_ssl(*quick_run(out, images), "--resume")
    assert resumed.returncode == 2
    assert "Refusing to load" in resumed.stderr and "Traceback" not in resumed.stderr
    assert not proof.exists()


class Payload:
    """What a tampered checkpoint could carry: unpickling it would create a file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))
