"""The online kNN monitor: with ``val_data`` (a labelled folder, one subfolder per class),
the backbone the run exports is evaluated every few epochs as ``ssl evaluate RUN
--train-data VAL_DATA`` evaluates it (the same held-out split, evaluation transform and
weighted kNN), so the last figure it logs is the one that command prints."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ssl_core.config import ResolvedConfig
from ssl_core.data.dataset import Skipped
from ssl_core.errors import ConfigError
from ssl_core.eval.features import (
    LabelledFiles,
    held_out_split,
    image_batches,
    pooled,
    scan_labelled,
)
from ssl_core.eval.knn import knn_topk
from ssl_core.train.process_group import Placement
from ssl_core.transforms.args import NormalizeArgs

BEST_CHECKPOINT = Path("checkpoints") / "best.ckpt"
BEST_EXPORT = Path("exported_models") / "exported_best.pt"
# As `ssl evaluate` with only --train-data: 20 % of each class are the queries.
VAL_FRACTION, SPLIT_SEED = 0.2, 0
K, TEMPERATURE = 20, 0.1
# val_every_epochs "auto": evaluation at most this fraction of the training compute.
BUDGET = 0.05
BATCH = 128


def every_epochs(
    val_images: int, train_images: int, view_sizes: Sequence[tuple[int, int]], size: tuple[int, int]
) -> int:
    """val_every_epochs "auto": the fewest epochs between evaluations that keep their cost
    within BUDGET of training's. An evaluation is one forward pass per validation image at
    ``size``; a training image costs a forward and a backward pass (about 3 forwards) of
    each view, by pixel count. Deterministic, so every process and a resume agree."""
    evaluation = val_images * size[0] * size[1]
    training = train_images * 3 * sum(h * w for h, w in view_sizes)
    return max(1, math.ceil(evaluation / (BUDGET * training)))


@dataclass
class ValImages:
    """This process's share of the validation images, decoded and centre-cropped once."""

    images: torch.Tensor  # uint8, N×3×H×W: the images with index ≡ rank (mod world size)
    labels: torch.Tensor  # of every image (all processes), bank first, then queries
    bank_size: int
    classes: list[str]
    skipped: Skipped


def check_val_data(val_data: str) -> LabelledFiles:
    """A labelled folder of two classes or more; called before the output is written."""
    labelled = scan_labelled(val_data, "val_data")
    if len(labelled.classes) < 2:
        raise ConfigError(
            f"val_data '{val_data}' has one class folder ({labelled.classes[0]}): the kNN "
            f"monitor needs two or more, one subfolder of images per class."
        )
    return labelled


def load_val_images(val_data: str, size: tuple[int, int], place: Placement) -> ValImages:
    """The held-out split of ``val_data``, decoded by every process (so that all agree on
    which files were readable); each keeps only its share."""
    labelled = check_val_data(val_data)
    bank, queries = held_out_split(labelled, VAL_FRACTION, SPLIT_SEED)
    files, labels = bank.files + queries.files, bank.labels + queries.labels
    skipped = Skipped()
    decoded, kept = [], []
    for indices, batch in image_batches(files, size, BATCH, skipped):
        kept += indices
        decoded.append(batch)
    if not kept:
        raise ConfigError(f"None of the images in val_data '{val_data}' could be read.")
    images = torch.cat(decoded)
    bank_size = sum(1 for i in kept if i < len(bank.files))
    if bank_size == 0 or bank_size == len(kept):
        raise ConfigError(
            f"val_data '{val_data}' has too few readable images for a held-out split: give "
            f"two or more per class."
        )
    share = images[place.rank :: place.world_size].clone()
    return ValImages(
        share, torch.tensor([labels[i] for i in kept]), bank_size, labelled.classes, skipped
    )


def build_monitor(
    resolved: ResolvedConfig, place: Placement, device: torch.device, train_images: int
) -> KnnMonitor | None:
    """The monitor of a run with val_data, its images loaded; None without."""
    from ssl_core.train.settle import view_sizes

    args = resolved.args
    if args.val_data is None:
        return None
    transform_args: Any = resolved.transform_args
    size = getattr(transform_args, "view_size", None)
    if size is None:
        raise ConfigError(
            f"val_data needs a transform with an image_size, which {resolved.transform_cls.name} "
            f"lacks: the evaluation crops the images to that size."
        )
    normalize = getattr(transform_args, "normalize", None) or NormalizeArgs()
    val = load_val_images(args.val_data, size, place)
    every = args.val_every_epochs
    if every == "auto":
        sizes = view_sizes(resolved) or [size, size]
        every = every_epochs(len(val.labels), train_images, sizes, size)
    return KnnMonitor(val, every, normalize.mean, normalize.std, device, place)


class KnnMonitor:
    def __init__(
        self,
        val: ValImages,
        every: int,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device,
        place: Placement,
    ) -> None:
        self.val, self.every, self.device, self.place = val, every, device, place
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1)

    def describe(self) -> str:
        queries = len(self.val.labels) - self.val.bank_size
        return (
            f"kNN monitor: {len(self.val.labels)} images of {len(self.val.classes)} classes in "
            f"val_data ({queries} held out as queries, as `ssl evaluate --train-data` does), "
            f"every {self.every} epoch{'s' if self.every > 1 else ''} and after the last."
        )

    def due(self, epochs_done: int, epochs: int) -> bool:
        return epochs_done % self.every == 0 or epochs_done == epochs

    @torch.no_grad()
    def evaluate(self, network: nn.Module, memory_format: torch.memory_format) -> dict[str, float]:
        """kNN top-1 (and top-5 with more than 5 classes) of ``network``'s features. Every
        process computes its share; the features are gathered and every process gets the
        same figures. ``network`` is left in the mode it was in."""
        was_training = network.training
        network.eval()
        try:
            mine = [
                pooled(network(self._normalized(batch, memory_format))).float()
                for batch in self.val.images.split(BATCH)
            ]
        finally:
            network.train(was_training)
        features = self._gathered(torch.cat(mine))
        labels, bank = self.val.labels, self.val.bank_size
        ks = (1, 5) if len(self.val.classes) > 5 else (1,)
        scores = knn_topk(
            features[:bank],
            labels[:bank],
            features[bank:],
            labels[bank:],
            len(self.val.classes),
            K,
            TEMPERATURE,
            ks,
        )
        return {f"knn_top{k}": score for k, score in zip(ks, scores, strict=True)}

    def _normalized(self, batch: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
        x = (batch.to(self.device).float().div_(255) - self.mean) / self.std
        return x.contiguous(memory_format=memory_format)

    def _gathered(self, mine: torch.Tensor) -> torch.Tensor:
        """All processes' features in image order (process r holds images r, r+W, ...)."""
        world = self.place.world_size
        if world == 1:
            return mine.cpu()
        total = len(self.val.labels)
        longest = -(-total // world)
        padded = torch.zeros(longest, mine.shape[1], device=mine.device)
        padded[: len(mine)] = mine
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded)
        features = torch.empty(total, mine.shape[1])
        for rank, part in enumerate(parts):
            count = len(range(rank, total, world))
            features[rank::world] = part[:count].cpu()
        return features
