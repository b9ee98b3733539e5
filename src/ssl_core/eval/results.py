"""What ``evaluate``, ``embed`` and ``export`` return (torch-free: plain numbers and paths)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ssl_core.errors import SSLCoreError


class ExportCheckFailed(SSLCoreError):
    """An exported TorchScript or ONNX file computed other features than the eager model; the
    file was not written."""


@dataclass(frozen=True)
class Scores:
    """Accuracies in [0, 1] of one backbone's features on the held-out images. A top-5 is
    None with five classes or fewer, where it would always be 1."""

    knn_top1: float
    knn_top5: float | None
    linear_top1: float
    linear_top5: float | None

    def minus(self, other: Scores) -> Scores:
        def diff(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else a - b

        return Scores(
            self.knn_top1 - other.knn_top1,
            diff(self.knn_top5, other.knn_top5),
            self.linear_top1 - other.linear_top1,
            diff(self.linear_top5, other.linear_top5),
        )


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class EvaluationResult:
    """kNN and linear-probe accuracy of a pretrained backbone and of the same architecture
    at random init (the run's own starting weights: same seed), on the same images."""

    weights: Path  # the file the pretrained weights were read from
    model: str
    method: str
    pretrained: Scores
    random_init: Scores
    classes: list[str]
    train_images: int
    val_images: int
    split: str  # where the held-out images came from
    k: int
    temperature: float
    image_size: tuple[int, int]
    device: str
    precision: str
    seconds: float
    skipped: list[SkippedFile] = field(default_factory=list)

    @property
    def gain(self) -> Scores:
        """Pretrained minus random init, in accuracy (0.15 is 15 points)."""
        return self.pretrained.minus(self.random_init)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = _jsonable(asdict(self))
        data["gain"] = asdict(self.gain)
        return data


@dataclass(frozen=True)
class EmbedResult:
    out: Path
    paths_file: Path | None  # the relative paths, one a line (for .npy)
    images: int
    dim: int
    seconds: float
    images_per_second: float
    device: str
    precision: str
    skipped: list[SkippedFile] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = _jsonable(asdict(self))
        return data


@dataclass(frozen=True)
class ExportResult:
    out: Path
    format: str
    weights: Path  # the file the weights were read from
    checked: str  # how the exported file was checked against the eager model
    max_abs_difference: float | None  # against the eager model's features, when compared

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = _jsonable(asdict(self))
        return data
