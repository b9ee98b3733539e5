"""Where this process stands among the run's processes: an external launcher's environment
(torchrun, SLURM), the processes started for ``devices=N``, and the torch.distributed group.
(Methods use the public helpers of ``ssl_core.distributed`` instead.)"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from ssl_core.errors import ConfigError, RankFailed

# A rank that waits longer than this in a collective gives up instead of hanging forever
# (SSL_CORE_DIST_TIMEOUT_S, in seconds, is for tests).
COLLECTIVE_TIMEOUT = (
    timedelta(seconds=float(os.environ["SSL_CORE_DIST_TIMEOUT_S"]))
    if os.environ.get("SSL_CORE_DIST_TIMEOUT_S")
    else timedelta(minutes=int(os.environ.get("SSL_CORE_DIST_TIMEOUT_MIN", "10")))
)
# How gloo says that another process went away (its socket closed, or it stopped answering).
LOST_PEER = ("gloo/transport", "Connection closed by peer", "Connection reset by peer")


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
        place = Placement(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
        missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not env.get(name)]
        if missing and place.world_size > 1:
            raise ConfigError(
                f"RANK={place.rank} and WORLD_SIZE={place.world_size} are set, as by a launcher, "
                f"but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not: "
                f"export MASTER_ADDR (the host name of the machine of rank 0) and MASTER_PORT "
                f"(a free port there, e.g. 29500) in every process's environment, or start "
                f"the run with torchrun, which sets them."
            )
        return place
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env:
        env.setdefault("MASTER_PORT", "29500")
        if not env.get("MASTER_ADDR"):
            raise ConfigError(
                f"Running under srun with {env['SLURM_NTASKS']} tasks but MASTER_ADDR is not "
                f"set: export MASTER_ADDR (the first node's host name: "
                f'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)) '
                f"and MASTER_PORT (default 29500) in the job script before srun; see the "
                f"README's section on several machines."
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


def lost_contact(exc: BaseException, place: Placement) -> RankFailed | None:
    """The user's error for a collective that failed because another process died or
    stopped answering (its machine went down, the network failed), else None."""
    text = str(exc)
    network = isinstance(exc, (dist.DistNetworkError, dist.DistStoreError))
    if not network and not (
        isinstance(exc, RuntimeError) and any(sign in text for sign in LOST_PEER)
    ):
        return None
    # "[.../gloo/transport/tcp/pair.cc:561] Connection closed by peer [10.0.0.2]:4242. This
    # is typically ..." -> "Connection closed by peer [10.0.0.2]:4242"
    reason = re.sub(r"^\[[^\]]*\]\s*", "", text.strip().splitlines()[0] if text.strip() else "")
    reason = reason.split(". ")[0].rstrip(".")
    if place.world_size == 2:
        who = f" (rank {1 - place.rank})"
    else:
        address = re.search(r"\[([^\]]+)\]:\d+", reason)
        who = f" (at {address.group(1)})" if address else ""
    return RankFailed(
        f"Lost contact with another training process{who}: {reason or type(exc).__name__}. "
        f"Process {place.rank} stopped, and with it the run. Resume with --resume once all "
        f"machines are back."
    )


def destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
