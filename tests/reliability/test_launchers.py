"""Runs under external launchers, with real processes on this machine: torchrun's processes
share one decoded image cache per machine; two torchrun launchers on loopback act as two
machines and train as one process would; a machine that dies ends the other with one clear
message; a launcher's environment without MASTER_ADDR is the user's error, not a crash."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

import ssl_core
from conftest import SSL_SCRIPT, TINY_RESNET, WIDE, pretrain_args, spread_images
from lifecycle_support import make_images
from ssl_core.testing import ONE_STEP_SEED, assert_same_step
from ssl_core.train.process_group import free_port

HERE = Path(__file__).parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
RESNET = TINY_RESNET


def pretrain_here(out: Path, images: Path, **options: object) -> ssl_core.PretrainResult:
    """The run of RESNET's settings in this process (the reference for launched runs)."""
    return ssl_core.pretrain(
        out=out,
        data=images,
        model="torchvision/resnet18",
        method_args={"hidden_dim": 64, "output_dim": 16},
        transform_args={"image_size": 32},
        epochs=1,
        num_workers=0,
        accelerator="cpu",
        precision="32-true",
        **options,
    )


def environment(**extra: str) -> dict[str, str]:
    env = {**os.environ, **WIDE, **extra}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)  # this process's own launcher, if any, is not the runs'
    return {k: v for k, v in env.items() if not k.startswith("SLURM_")}


def torchrun(*args: str, timeout: float = 240, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*TORCHRUN, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment(**env),
    )


def machine(node: int, port: int, args: list[str], **env: str) -> subprocess.Popen:
    """One torchrun launcher with one process, as node ``node`` of two (static rendezvous:
    node 0 holds rank 0)."""
    return subprocess.Popen(
        [
            *TORCHRUN,
            "--nnodes=2",
            "--nproc-per-node=1",
            f"--node-rank={node}",
            "--master-addr=127.0.0.1",
            f"--master-port={port}",
            "-m",
            "ssl_core",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment(**env),
        start_new_session=True,
    )


def cache_files() -> set[str]:
    return {p.name for p in Path("/dev/shm").glob("ssl-core-cache-*")}


def noise_jpegs(folder: Path, count: int, side: int) -> Path:
    rng = random.Random(0)
    from PIL import Image

    folder.mkdir()
    for i in range(count):
        image = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
        image.save(folder / f"{i:03d}.jpg", quality=90)
    return folder


# -- 1. one decoded cache per machine -------------------------------------------------------


def test_torchrun_processes_share_one_decoded_cache(tmp_path):
    """400 images of 512×512 (315 MB decoded): process 0 decodes them into shared memory
    and process 1 maps them; neither holds a private copy."""
    images = noise_jpegs(tmp_path / "images", 400, 512)
    cache_bytes = 400 * 512 * 512 * 3
    probe = tmp_path / "probe"
    probe.mkdir()
    before = cache_files()
    result = torchrun(
        "--standalone",
        "--nproc-per-node=2",
        str(HERE / "launcher_probe.py"),
        *pretrain_args(
            out=tmp_path / "run",
            data=images,
            model="tiny/net",
            method="memprobe",
            transform_args="image_size=16",
            epochs=1,
            batch_size=8,
            num_workers=0,
            accelerator="cpu",
        ),
        PROBE_DIR=str(probe),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    megabytes = f"{cache_bytes / 1e6:.1f} MB"
    decoded = f"Process 0 decoded 400 images into shared memory ({megabytes}) for the 2 processes"
    assert output.count(decoded) == 1
    assert "Process 1 decoded" not in output
    assert output.count(f"Process 1 mapped the shared image cache ({megabytes}).") == 1
    for rank in (0, 1):
        report = json.loads((probe / f"rank{rank}.json").read_text())
        # Private memory grew by the model, buffers and the loader (~100-150 MB measured),
        # not by the cache: each process with its own copy grew by 420 MB or more.
        grown = report["now"]["RssAnon"] - report["at_start"]["RssAnon"]
        assert grown < cache_bytes, (rank, grown)
        # The images it read are pages of the shared file, none copied on write.
        assert report["now"]["RssShmem"] > 0.1 * cache_bytes, rank
        (mapping,) = [m for m in report["cache_mappings"] if m["Size"] >= cache_bytes]
        assert mapping["Anonymous"] == 0 and mapping["Rss"] > 0.1 * cache_bytes, rank
    assert cache_files() == before  # its name is gone once both had mapped it


def test_torchrun_trains_as_processes_started_by_devices(tmp_path):
    """The same weights, bit for bit, with the cache shared through /dev/shm (torchrun) as
    with the cache handed to the processes that ``devices=2`` starts."""
    images = make_images(tmp_path / "images", count=64, side=32)
    options = {"data": images, "epochs": 1, "batch_size": 8, **RESNET}
    result = torchrun(
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "ssl_core",
        *pretrain_args(out=tmp_path / "torchrun", **options),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Process 1 mapped the shared image cache" in result.stdout + result.stderr
    spawned = pretrain_here(tmp_path / "spawned", images, batch_size=8, devices=2)
    launched = torch.load(tmp_path / "torchrun/exported_models/exported_last.pt")
    started = torch.load(spawned.exported_model)
    assert launched.keys() == started.keys()
    for key, value in started.items():
        torch.testing.assert_close(launched[key], value, rtol=0, atol=0, msg=key)


# -- 2. two machines ------------------------------------------------------------------------


def test_two_machines_train_as_one_process(tmp_path):
    """One step on 16 images: two launchers with one process each (batch 8 each) make the
    update of one process with batch 16; each machine decodes its own cache."""
    images = tmp_path / "sixteen"
    images.mkdir()
    for path in spread_images(16):
        shutil.copy(path, images / f"{path.parent.name}_{path.name}")
    options = {"data": images, "epochs": 1, "batch_size": 16, "seed": ONE_STEP_SEED, **RESNET}
    port = free_port()
    nodes = [machine(n, port, pretrain_args(out=tmp_path / "two", **options)) for n in (0, 1)]
    outputs = [node.communicate(timeout=240)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    for rank, output in enumerate(outputs):
        assert output.count(f"Process {rank} decoded 16 images") == 1, output[-3000:]
        assert f"Process {1 - rank} decoded" not in output

    one = pretrain_here(tmp_path / "one", images, batch_size=16, seed=ONE_STEP_SEED)
    two = torch.load(tmp_path / "two/checkpoints/last.ckpt", weights_only=True)
    assert two["step"] == one.steps == 1
    torch.manual_seed(ONE_STEP_SEED)  # the model exactly as the runs build it
    backbone = ssl_core.build_backbone("torchvision/resnet18")
    simclr = ssl_core.get_method("simclr")
    initial = simclr(simclr.args_model(hidden_dim=64, output_dim=16)).build(backbone)
    single = torch.load(one.checkpoint, weights_only=True)["model"]
    assert_same_step(single, two["model"], initial.state_dict())


def kill_machine(launcher: subprocess.Popen) -> None:
    """SIGKILL a launcher and every process under it, as a machine that goes down: its
    training processes are in sessions of their own, out of reach of a group kill."""

    def tree(pid: int) -> list[int]:
        found = [pid]
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            try:
                children = task.read_text().split()
            except OSError:
                continue  # a thread that just ended
            for child in children:
                found += tree(int(child))
        return found

    for pid in tree(launcher.pid):
        os.kill(pid, signal.SIGKILL)
    launcher.wait()


def test_a_machine_that_dies_ends_the_other_with_one_clear_message(tmp_path):
    out = tmp_path / "run"
    images = make_images(tmp_path / "images", count=64, side=32)
    args = pretrain_args(out=out, data=images, epochs=5, batch_size=8, **RESNET)
    before = cache_files()
    port = free_port()
    survivor, doomed = (machine(n, port, args, SSL_CORE_DIST_TIMEOUT_S="60") for n in (0, 1))
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 180
    while time.time() < deadline and survivor.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    assert survivor.poll() is None, "the run ended before a machine could die"
    kill_machine(doomed)
    killed = time.time()
    output = survivor.communicate(timeout=120)[0]
    assert time.time() - killed < 120
    assert survivor.returncode != 0
    assert output.count("Lost contact with another training process (rank 1)") == 1, output
    assert "Resume with --resume once all machines are back." in output
    assert "GLHF" not in output  # gloo's own words stay in train.log
    assert cache_files() == before


# -- 3. a launcher's environment without MASTER_ADDR --------------------------------------


def test_a_launcher_environment_without_master_addr_says_what_to_export(tmp_path):
    images = make_images(tmp_path / "images", count=8, side=16)
    args = pretrain_args(out=tmp_path / "run", data=images, model="torchvision/resnet18")
    for launcher, exported in (
        ({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, "MASTER_ADDR and MASTER_PORT"),
        ({"SLURM_NTASKS": "2", "SLURM_PROCID": "0", "SLURM_LOCALID": "0"}, "MASTER_ADDR"),
    ):
        result = subprocess.run(
            [str(SSL_SCRIPT), *args],
            capture_output=True,
            text=True,
            timeout=120,
            env={**environment(), **launcher},
        )
        assert result.returncode == 2, result.stderr
        assert "Error:" in result.stderr and "Traceback" not in result.stderr
        assert f"export {exported.split()[0]}" in result.stderr
        assert exported in result.stderr.replace("\n", " ")
        assert not (tmp_path / "run").exists()
