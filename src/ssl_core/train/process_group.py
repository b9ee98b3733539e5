"""Where this process stands among the run's processes: an external launcher's environment
(torchrun, SLURM), the processes started for ``devices=N``, and the torch.distributed group.
(Methods use the public helpers of ``ssl_core.distributed`` instead.)"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

# A rank that waits longer than this in a collective gives up instead of hanging forever.
COLLECTIVE_TIMEOUT = timedelta(minutes=int(os.environ.get("SSL_CORE_DIST_TIMEOUT_MIN", "10")))


@dataclass
class Placement:
    """Where this process stands in the run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def launched_placement() -> Placement | None:
    """The placement an external launcher gave this process, if any.

    torchrun sets RANK, WORLD_SIZE and LOCAL_RANK (and MASTER_ADDR/PORT); under ``srun``
    SLURM sets SLURM_PROCID, SLURM_NTASKS and SLURM_LOCALID, and MASTER_ADDR/MASTER_PORT
    must be exported by the job script.
    """
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return Placement(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env:
        env.setdefault("MASTER_PORT", "29500")
        if "MASTER_ADDR" not in env:
            raise RuntimeError(
                "Running under srun with several tasks: export MASTER_ADDR (the first node's "
                "host name) before srun; see the README's multi-node section."
            )
        return Placement(
            int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0))
        )
    return None


def resolve_devices(devices: int | str, accelerator: str) -> int:
    """``auto``: every visible GPU when training on CUDA, else one process."""
    if devices != "auto":
        return int(devices)
    use_cuda = accelerator == "cuda" or (accelerator == "auto" and torch.cuda.is_available())
    return max(1, torch.cuda.device_count()) if use_cuda else 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def init_process_group(place: Placement, device: torch.device) -> None:
    if place.world_size == 1 or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend="nccl" if device.type == "cuda" else "gloo",
        rank=place.rank,
        world_size=place.world_size,
        timeout=COLLECTIVE_TIMEOUT,
    )


def barrier(place: Placement) -> None:
    if place.world_size > 1 and dist.is_initialized():
        dist.barrier()


def destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
