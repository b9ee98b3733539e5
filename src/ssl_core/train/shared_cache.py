"""One decoded image cache per machine under an external launcher (torchrun, srun).

The first process of each machine decodes the images and writes the cache into an unnamed
file in /dev/shm (``O_TMPFILE``: a crash while decoding leaves nothing behind), then links
it under a name unique to this run; the machine's other processes map it with no copy, so
8 processes hold one copy of the images instead of 8. The name is removed once every
process has mapped it (the mappings outlive it). The file also carries the list of kept
and skipped images, so every process trains on the same list.

Processes share a cache when they see the same /dev/shm and the launcher puts them on the
same node (torchrun's GROUP_RANK, SLURM_NODEID); the one with the lowest rank decodes.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import mmap
import os
import socket
import sys
import time
import uuid
from pathlib import Path

import torch
import torch.distributed as dist

from ssl_core.data.dataset import ImageCache, Skipped
from ssl_core.errors import ConfigError, RankFailed, SSLCoreError
from ssl_core.train.data import LoadedImages as Loaded
from ssl_core.train.data import load_images
from ssl_core.train.process_group import Placement

SHM = Path("/dev/shm")
PREFIX = "ssl-core-cache-"
ALIGN = 64


def load_shared(place: Placement, files: list[Path], cache: bool | str, progress: bool) -> Loaded:
    """``load_images`` for one process of a launched run: decoded once per machine.
    Every process of the run must call it (it uses collectives)."""
    machines: list[tuple[str, int, int, str]] = [("", 0, 0, "")] * place.world_size
    dist.all_gather_object(machines, (_machine_key(place), place.rank, os.getpid(), _token()))
    mine = [m for m in machines if m[0] == machines[place.rank][0]]
    _, leader, leader_pid, token = min(mine, key=lambda m: m[1])
    path = SHM / f"{PREFIX}{token}"
    if len(mine) == 1:
        loaded = load_images(files, cache, progress)
        if loaded[0] is not None:
            _say(f"Process {place.rank} decoded {len(loaded[1])} images ({_mb(loaded[0])}).")
        dist.barrier()
    elif place.rank == leader:
        loaded = _decode_and_publish(place, path, files, cache, progress, len(mine))
    else:
        loaded = _map_published(place, path, leader, leader_pid, files, cache)
    _check_same_everywhere(loaded, place)
    return loaded


def _decode_and_publish(
    place: Placement, path: Path, files: list[Path], cache: bool | str, progress: bool, local: int
) -> Loaded:
    failure: Exception | None = None
    try:
        loaded = load_images(files, cache, progress)
        image_cache, kept, skipped = loaded
        status = "cached" if image_cache is not None else "uncached"
        try:
            fd = _publish(path, _header(status, loaded), image_cache)
        except OSError as exc:
            # e.g. a container's small /dev/shm (docker's default is 64 MB).
            _say(
                f"Warning: cannot share the decoded images through {SHM} ({exc.strerror}; "
                f"{_mb(image_cache)} needed): each process on this machine decodes its own "
                f"copy. A larger /dev/shm (docker run --shm-size) avoids that."
            )
            fd = _publish(path, {"status": "unshared"})
        else:
            if image_cache is not None:
                image_cache = _map(fd)[0]  # the private copy is freed when ``loaded`` goes
                _say(
                    f"Process {place.rank} decoded {len(kept)} images into shared memory "
                    f"({_mb(image_cache)}) for the {local} processes on this machine."
                )
            loaded = (image_cache, kept, skipped)
            release_freed_memory()
        os.close(fd)
    except Exception as exc:
        failure = exc
        if not _publish_failure(path, exc):
            raise  # the others see this process end
    try:
        dist.barrier()  # every process of the machine has mapped it (or read the failure)
    finally:
        path.unlink(missing_ok=True)
    if failure is not None:
        raise failure
    return loaded


def _map_published(
    place: Placement,
    path: Path,
    leader: int,
    leader_pid: int,
    files: list[Path],
    cache: bool | str,
) -> Loaded:
    while not path.exists():
        if not _alive(leader_pid):
            raise RankFailed(
                f"Process {leader}, which decodes the images for this machine, ended before "
                f"sharing them; its own error says why."
            )
        time.sleep(0.05)
    try:
        fd = os.open(path, os.O_RDWR)
        try:
            image_cache, header = _map(fd)
        finally:
            os.close(fd)
        dist.barrier()
    except BaseException:
        path.unlink(missing_ok=True)  # the leader may be gone: leave nothing behind
        raise
    if header["status"] == "failed":
        raise RankFailed(
            f"Process {leader} failed while decoding the images for this machine: "
            f"{header['message']}"
        )
    if header["status"] == "unshared":
        return load_images(files, cache, False)
    if image_cache is not None:
        _say(f"Process {place.rank} mapped the shared image cache ({_mb(image_cache)}).")
    kept = [Path(p) for p in header["kept"]]
    skipped = Skipped([(Path(p), why) for p, why in header["skipped"]])
    return image_cache, kept, skipped


def _publish(path: Path, header: dict, image_cache: ImageCache | None = None) -> int:
    """Write the header and the cache into an unnamed file in /dev/shm, then give it its
    name; returns the open file."""
    data = json.dumps(header).encode()
    offsets_at, shapes_at, storage_at, size = _layout(
        len(data), _count(image_cache), _nbytes(image_cache)
    )
    fd = os.open(SHM, os.O_TMPFILE | os.O_RDWR, 0o600)
    try:
        os.posix_fallocate(fd, 0, size)  # ENOSPC here rather than SIGBUS when writing
        with mmap.mmap(fd, size) as memory:
            memory[:8] = len(data).to_bytes(8, "little")
            memory[8 : 8 + len(data)] = data
            if image_cache is not None and len(image_cache):
                for tensor, at in (
                    (image_cache.offsets, offsets_at),
                    (image_cache.shapes.to(torch.int32), shapes_at),
                    (image_cache.storage, storage_at),
                ):
                    view = torch.frombuffer(
                        memory, dtype=tensor.dtype, count=tensor.numel(), offset=at
                    )
                    view.copy_(tensor.reshape(-1))
                    del view  # the mapping cannot close while a tensor uses it
        _give_name(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _give_name(fd: int, path: Path) -> None:
    """Link the unnamed file ``fd`` into /dev/shm as ``path``, atomically: whoever sees the
    name sees the whole file."""
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        # A dir_fd makes Python call linkat(AT_SYMLINK_FOLLOW), which links the file itself
        # rather than the /proc symlink.
        os.link(f"/proc/self/fd/{fd}", path.name, dst_dir_fd=directory, follow_symlinks=True)
    finally:
        os.close(directory)


def _header(status: str, loaded: Loaded) -> dict:
    image_cache, kept, skipped = loaded
    return {
        "status": status,
        "kept": [str(p) for p in kept],
        "skipped": [[str(p), why] for p, why in skipped.files],
        "images": _count(image_cache),
        "bytes": _nbytes(image_cache),
    }


def _publish_failure(path: Path, exc: Exception) -> bool:
    message = str(exc) if isinstance(exc, SSLCoreError) else f"{type(exc).__name__}: {exc}"
    try:
        os.close(_publish(path, {"status": "failed", "message": message[:2000]}))
    except OSError:
        return False
    return True


def _map(fd: int) -> tuple[ImageCache | None, dict]:
    """The cache in a published file, as tensors over a shared mapping (no copy)."""
    memory = mmap.mmap(fd, os.fstat(fd).st_size)
    length = int.from_bytes(memory[:8], "little")
    header = json.loads(memory[8 : 8 + length])
    if header["status"] != "cached":
        memory.close()
        return None, header
    images, nbytes = header["images"], header["bytes"]
    offsets_at, shapes_at, storage_at, _ = _layout(length, images, nbytes)

    def tensor(dtype: torch.dtype, count: int, at: int) -> torch.Tensor:
        # frombuffer keeps ``memory`` open as long as the tensor lives.
        return (
            torch.frombuffer(memory, dtype=dtype, count=count, offset=at)
            if count
            else (torch.empty(0, dtype=dtype))
        )

    cache = ImageCache(
        tensor(torch.uint8, nbytes, storage_at),
        tensor(torch.int64, images, offsets_at),
        tensor(torch.int32, images * 3, shapes_at).view(images, 3),
    )
    return cache, header


def _layout(header: int, images: int, nbytes: int) -> tuple[int, int, int, int]:
    """Where the offsets, shapes and storage start, and the file's size."""
    offsets = _aligned(8 + header)
    shapes = _aligned(offsets + 8 * images)
    storage = _aligned(shapes + 4 * 3 * images)
    return offsets, shapes, storage, max(storage + nbytes, 1)


def _count(image_cache: ImageCache | None) -> int:
    return len(image_cache) if image_cache is not None else 0


def _nbytes(image_cache: ImageCache | None) -> int:
    return image_cache.nbytes if image_cache is not None else 0


def _aligned(at: int) -> int:
    return (at + ALIGN - 1) // ALIGN * ALIGN


def _check_same_everywhere(loaded: Loaded, place: Placement) -> None:
    """Machines decode on their own: they must have found the same images, or the
    processes would train on different lists (and could wait on each other forever)."""
    image_cache, kept, skipped = loaded
    digest = hashlib.sha1(str(len(kept)).encode())
    if image_cache is not None:
        digest.update(image_cache.shapes.to(torch.int32).numpy().tobytes())
    found: list[tuple[int, int, str]] = [(0, 0, "")] * place.world_size
    dist.all_gather_object(found, (len(kept), len(skipped), digest.hexdigest()))
    if len(set(found)) > 1:
        counts = ", ".join(f"process {r}: {n} images" for r, (n, _, _) in enumerate(found))
        raise ConfigError(
            f"The machines of this run found different images ({counts}; or the same number "
            f"with different sizes). Every machine must read the same --data: a shared file "
            f"system or identical copies."
        )


def _machine_key(place: Placement) -> str:
    """Equal for processes that can share a file in /dev/shm and see each other's process
    ids, and that the launcher put on the same node."""
    try:
        shm = os.stat(SHM)
        pids = os.readlink("/proc/self/ns/pid")
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        _check_publishing()
    except (OSError, AttributeError):
        return f"alone:{place.rank}"  # no usable /dev/shm (not Linux): every process decodes
    node = os.environ.get("GROUP_RANK") or os.environ.get("SLURM_NODEID") or ""
    return f"{socket.gethostname()}|{boot}|{pids}|{shm.st_dev}:{shm.st_ino}|{node}"


def _check_publishing() -> None:
    """Raise unless an unnamed file can be made in /dev/shm and given a name there."""
    path = SHM / f"{PREFIX}check-{_token()}"
    fd = os.open(SHM, os.O_TMPFILE | os.O_RDWR, 0o600)
    try:
        _give_name(fd, path)
        path.unlink()
    finally:
        os.close(fd)


def _token() -> str:
    return uuid.uuid4().hex


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")  # not a zombie


def _mb(image_cache: ImageCache | None) -> str:
    return f"{_nbytes(image_cache) / 1e6:.1f} MB"


def release_freed_memory() -> None:
    """Hand the freed private copy back to the system. glibc keeps freed blocks of the
    decoding threads' arenas for reuse, and the process would go on holding a second copy
    of the images; elsewhere (not glibc) this does nothing."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
