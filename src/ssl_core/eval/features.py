"""Features of image files for evaluation and embedding: the evaluation transform (resize
the shorter side, centre crop to the run's view size, normalise as in training), decoding in
threads a few batches ahead of the model, the training's skip-and-count rule for unreadable
files, and inference in bf16 where the GPU has it."""

from __future__ import annotations

import contextlib
import os
import random
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ssl_core.data.dataset import Skipped
from ssl_core.data.decode import Unreadable, decode_file
from ssl_core.data.scan import IMAGE_EXTENSIONS, scan_images, shown_path
from ssl_core.errors import ConfigError
from ssl_core.eval.results import SkippedFile
from ssl_core.train.model import pick_device

PRECISIONS = ("auto", "32-true", "bf16-mixed")


@dataclass
class LabelledFiles:
    """Image files with the index of their class (a subfolder name) in ``classes``."""

    files: list[Path]
    labels: list[int]
    classes: list[str]


def scan_labelled(
    root: str | Path, option: str, classes: Sequence[str] | None = None
) -> LabelledFiles:
    """One subfolder per class, its images found recursively (as training scans). With
    ``classes`` (the training set's), every subfolder must be one of them."""
    path = Path(root).expanduser()
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is not a directory"
        raise ConfigError(
            f"{option} '{shown_path(root)}' {what}: give a folder with one subfolder of images "
            f"per class."
        )
    folders = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        loose = any(p.suffix.lower() in IMAGE_EXTENSIONS for p in path.iterdir())
        raise ConfigError(
            f"{option} '{shown_path(root)}' has no class subfolders"
            + (" (its images lie directly in it)" if loose else "")
            + ": evaluation needs labelled images, one subfolder per class "
            "(e.g. train/cat/1.jpg, train/dog/2.jpg)."
        )
    names = [folder.name for folder in folders]
    if classes is None:
        classes = names
    unknown = [name for name in names if name not in classes]
    if unknown:
        raise ConfigError(
            f"{option} '{shown_path(root)}' has class folder(s) {', '.join(unknown)} that the "
            f"training images lack; their classes are: {', '.join(classes)}."
        )
    files, labels = [], []
    for folder in folders:
        try:
            found = scan_images(folder)
        except ConfigError:
            raise ConfigError(
                f"Class folder '{shown_path(folder)}' of {option} holds no images (looked for "
                f"{', '.join(sorted(IMAGE_EXTENSIONS))}, recursively)."
            ) from None
        files += found
        labels += [list(classes).index(folder.name)] * len(found)
    return LabelledFiles(files, labels, list(classes))


def held_out_split(
    data: LabelledFiles, fraction: float, seed: int
) -> tuple[LabelledFiles, LabelledFiles]:
    """A seeded, stratified split: ``fraction`` of each class (at least one image of a class
    with two or more, never all of them) is held out for evaluation."""
    if not 0 < fraction < 1:
        raise ConfigError(f"val_fraction must be between 0 and 1, got {fraction}.")
    rng = random.Random(seed)
    train, val = LabelledFiles([], [], data.classes), LabelledFiles([], [], data.classes)
    for label in range(len(data.classes)):
        members = [f for f, y in zip(data.files, data.labels, strict=True) if y == label]
        rng.shuffle(members)
        count = min(len(members) - 1, max(1, round(fraction * len(members))))
        for i, path in enumerate(members):
            part = val if i < count else train
            part.files.append(path)
            part.labels.append(label)
    return train, val


def crop_size_of(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize (antialiased) so the image covers ``size`` with its aspect ratio kept (the
    shorter side becomes the crop's for a square), then take the centre ``size``."""
    from torchvision.transforms.v2 import functional as F

    height, width = size
    h, w = image.shape[-2:]
    if height == width:
        if min(h, w) != height:
            image = F.resize(image, [height], antialias=True)  # torchvision's Resize(size)
    else:
        scale = max(height / h, width / w)
        new = [max(height, round(h * scale)), max(width, round(w * scale))]
        if new != [h, w]:
            image = F.resize(image, new, antialias=True)
    return F.center_crop(image, [height, width])


def inference_precision(precision: str, device: torch.device) -> str:
    """bf16 autocast for "auto" on a CUDA device that has bf16, float32 elsewhere (on a CPU
    the features then do not depend on the machine's bf16 support)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}.")
    if precision == "auto":
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return "bf16-mixed" if cuda_bf16 else "32-true"
    return precision


def choose_device(accelerator: str) -> torch.device:
    if accelerator not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"accelerator must be auto, cpu or cuda, got {accelerator!r}.")
    return pick_device(accelerator, 0)


def decode_threads(device: torch.device) -> int:
    """Threads that decode ahead of the model. On a GPU run the cores are free for them.
    On a CPU run they take cores from the model's own threads: one decoder per four cores,
    none (decode in turn with the model) below that, which measured fastest on 2 cores."""
    cores = len(os.sched_getaffinity(0))
    return _all_threads() if device.type == "cuda" else cores // 4


def _all_threads() -> int:
    return max(1, min(8, len(os.sched_getaffinity(0)) * 2))


def _decoded_in_turn(
    files: Sequence[Path], size: tuple[int, int], batch_size: int, skipped: Skipped
) -> Iterator[tuple[list[int], torch.Tensor]]:
    for start in range(0, len(files), batch_size):
        indices, images = [], []
        for i, path in enumerate(files[start : start + batch_size], start):
            result = _load(path, size)
            if isinstance(result, str):
                skipped.files.append((path, result))
            else:
                indices.append(i)
                images.append(result)
        if images:
            yield indices, torch.stack(images)


def _load(path: Path, size: tuple[int, int]) -> torch.Tensor | str:
    try:
        return crop_size_of(decode_file(path), size)
    except Unreadable as exc:
        return str(exc)


def image_batches(
    files: Sequence[Path],
    size: tuple[int, int],
    batch_size: int,
    skipped: Skipped,
    threads: int | None = None,
) -> Iterator[tuple[list[int], torch.Tensor]]:
    """(indices into ``files``, uint8 batch B×3×H×W) in file order, decoded and cropped in
    ``threads`` threads (default: two a core, at most 8) two batches ahead (the decoders
    release the GIL), or in the calling thread for 0; unreadable files are added to
    ``skipped`` and left out."""
    if threads is None:
        threads = _all_threads()
    if threads == 0:
        yield from _decoded_in_turn(files, size, batch_size, skipped)
        return
    with ThreadPoolExecutor(threads) as pool:
        pending: deque[list[Future[torch.Tensor | str]]] = deque()
        starts = iter(range(0, len(files), batch_size))

        def submit() -> None:
            start = next(starts, None)
            if start is not None:
                chunk = files[start : start + batch_size]
                pending.append([pool.submit(_load, path, size) for path in chunk])

        for _ in range(3):
            submit()
        offset = 0
        while pending:
            futures = pending.popleft()
            submit()
            indices, images = [], []
            for i, future in enumerate(futures):
                result = future.result()
                if isinstance(result, str):
                    skipped.files.append((files[offset + i], result))
                else:
                    indices.append(offset + i)
                    images.append(result)
            offset += len(futures)
            if images:
                yield indices, torch.stack(images)


def prepare_network(network: nn.Module, device: torch.device, channels_last: bool) -> nn.Module:
    """Eval mode on ``device``; channels-last for conv nets if asked."""
    network = network.eval().to(device)
    if channels_last and any(isinstance(m, nn.Conv2d) for m in network.modules()):
        network = network.to(memory_format=torch.channels_last)
    return network


@torch.inference_mode()
def extract_features(
    networks: Sequence[nn.Module],
    files: Sequence[Path],
    size: tuple[int, int],
    mean: Sequence[float],
    std: Sequence[float],
    device: torch.device,
    precision: str,
    batch_size: int = 128,
    progress: Callable[[int], None] | None = None,
    as_training: bool = False,
) -> tuple[list[torch.Tensor], list[int], Skipped]:
    """Each network's float32 features (on the CPU) of the readable files, in file order,
    from one decode of each file; the indices of those files; and the skipped ones.

    Conv nets run channels-last on a GPU; on a CPU it measured slower for inference, so
    they run in the default memory format there unless ``as_training``: then channels-last
    as training and its online monitor run them (those kernels sum in another order, which
    can flip a near-tied kNN vote), so `ssl evaluate` reports the monitor's figure."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}.")
    wanted = device.type == "cuda" or as_training
    nets = [prepare_network(n, device, wanted) for n in networks]
    channels_last = wanted and any(isinstance(m, nn.Conv2d) for n in nets for m in n.modules())
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)
    features: list[list[torch.Tensor]] = [[] for _ in nets]
    kept: list[int] = []
    skipped = Skipped()
    autocast = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        if precision == "bf16-mixed"
        else contextlib.nullcontext()
    )
    batches = image_batches(files, size, batch_size, skipped, decode_threads(device))
    for indices, batch in batches:
        if device.type == "cuda":
            batch = batch.pin_memory()
        x = (batch.to(device, non_blocking=True).float().div_(255) - mean_t) / std_t
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast:
            for net, out in zip(nets, features, strict=True):
                out.append(pooled(net(x)).float().to("cpu", non_blocking=True))
        kept += indices
        if progress is not None:
            progress(len(indices))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    if not kept:
        raise ConfigError(
            f"None of the {len(files)} image file(s) could be read. {skipped.summary()}"
        )
    return [torch.cat(f) for f in features], kept, skipped


def pooled(output: torch.Tensor) -> torch.Tensor:
    """N×D features: a spatial or token output is averaged, as the Backbone does."""
    if output.dim() == 4:
        return output.mean(dim=(2, 3))
    if output.dim() == 3:
        return output.mean(dim=1)
    return output.flatten(1)


@contextlib.contextmanager
def progress_bar(
    total: int, description: str, enabled: bool = True
) -> Iterator[Callable[[int], None]]:
    """A rich bar on stderr while features are computed, when stderr is a terminal."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    show = enabled and console.is_terminal
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("images"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not show,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def skipped_files(skipped: Skipped) -> list[SkippedFile]:
    return [SkippedFile(shown_path(path), why) for path, why in skipped.files]
