"""What ``pretrain`` returns: the run's outputs and figures (also written as summary.json)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PATH_FIELDS = ("out", "exported_model", "checkpoint")


@dataclass
class PretrainResult:
    out: Path
    exported_model: Path
    checkpoint: Path
    epochs: int
    steps: int
    images: int
    skipped_images: int
    final_loss: float
    seconds: float
    images_per_second: float
    device: str
    precision: str
    rank: int = 0  # under torchrun/srun every process returns one; rank 0 reports it
    # ssl-core's version and the distributions of the method, transform and backbone
    # provider that trained it (as in config.json; see ssl_core.provenance)
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PretrainResult:
        values: dict[str, Any] = {k: Path(v) if k in PATH_FIELDS else v for k, v in data.items()}
        return cls(**values)
