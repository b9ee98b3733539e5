"""``ssl`` with one more method, ``memprobe``, for test_launchers: run it under torchrun in
place of ``-m ssl_core``. At the end of each epoch every process writes what its memory
holds to PROBE_DIR/rank<R>.json: its private (anonymous) and shared memory, now and when
the script started, and its mappings of the shared image cache."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/: lifecycle_support

from lifecycle_support import TinyProvider, registered, simple_method  # noqa: E402
from ssl_core import MethodModule  # noqa: E402


def memory() -> dict[str, int]:
    """This process's resident memory in bytes: private (RssAnon) and shared (RssShmem)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssShmem"):
            fields[key] = int(value.split()[0]) * 1024
    return fields


def cache_mappings() -> list[dict[str, int]]:
    """/proc/self/smaps entries (bytes) of the files of /dev/shm this process maps: the
    cache is named ssl-core-cache-* where it was mapped by name, /dev/shm/#<inode> in the
    process that made it."""
    found: list[dict[str, int]] = []
    current: dict[str, int] | None = None
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and ":" not in head[0]:  # a mapping's first line
            current = {} if " /dev/shm/" in line else None
            if current is not None:
                found.append(current)
        elif current is not None and head and head[0].endswith(":") and head[-1] == "kB":
            current[head[0][:-1]] = int(head[1]) * 1024
    return found


AT_START = memory()


class Probe(MethodModule):
    def __init__(self, backbone: torch.nn.Module, rank: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.rank = rank

    def forward(self, views: list[torch.Tensor]) -> torch.Tensor:
        a, b = self.backbone(torch.cat(views)).chunk(2)
        return (a - b).pow(2).mean()

    def on_epoch_end(self, epoch: int) -> None:
        report = {"at_start": AT_START, "now": memory(), "cache_mappings": cache_mappings()}
        path = Path(os.environ["PROBE_DIR"]) / f"rank{self.rank}.json"
        path.write_text(json.dumps(report))


MEMPROBE = simple_method("memprobe", lambda backbone, run: Probe(backbone, run.rank))

if __name__ == "__main__":
    from ssl_core.cli import main

    with registered(MEMPROBE, providers=(TinyProvider(),)):
        sys.argv = ["ssl", *sys.argv[1:]]
        main()
