"""Using a pretrained backbone: ``evaluate`` it, ``embed`` images with it, ``export`` it.

Each takes RUN: a run directory written by ``pretrain``, a checkpoint from its
``checkpoints/`` or an exported backbone from its ``exported_models/``. Importing this
module is cheap; torch loads when one of them is called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ssl_core.eval.results import EmbedResult, EvaluationResult, ExportResult

Checkpoint = Literal["last", "best"]


def evaluate(
    run: str | Path,
    train_data: str | Path,
    val_data: str | Path | None = None,
    *,
    checkpoint: Checkpoint | None = None,
    k: int = 20,
    temperature: float = 0.1,
    val_fraction: float = 0.2,
    seed: int = 0,
    batch_size: int = 128,
    accelerator: Literal["auto", "cpu", "cuda"] = "auto",
    precision: Literal["auto", "32-true", "bf16-mixed"] = "auto",
    progress: bool = True,
) -> EvaluationResult:
    """kNN (cosine, ``k`` neighbours weighted exp(sim / ``temperature``)) and linear-probe
    top-1/top-5 accuracy of the pretrained backbone, and of the same architecture at random
    init (the run's own starting weights), on labelled folders: one subfolder per class.

    Without ``val_data``, ``val_fraction`` of each class of ``train_data`` is held out
    (seeded by ``seed``). Images are resized (shorter side) and centre-cropped to the run's
    image size and normalised as in training; unreadable files are skipped and listed in
    the result. ``checkpoint`` ("last" or "best") picks the weights of a run directory.
    """
    from ssl_core.eval.evaluate import run_evaluation

    return run_evaluation(
        run,
        train_data,
        val_data,
        checkpoint=checkpoint,
        k=k,
        temperature=temperature,
        val_fraction=val_fraction,
        seed=seed,
        batch_size=batch_size,
        accelerator=accelerator,
        precision=precision,
        progress=progress,
    )


def embed(
    run: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    checkpoint: Checkpoint | None = None,
    batch_size: int = 128,
    accelerator: Literal["auto", "cpu", "cuda"] = "auto",
    precision: Literal["auto", "32-true", "bf16-mixed"] = "auto",
    overwrite: bool = False,
    progress: bool = True,
) -> EmbedResult:
    """One embedding per image under ``data`` (sorted by path; unreadable files skipped and
    listed in the result), written by ``out``'s suffix: ``.npy`` (float32 N×D, with the
    relative paths in ``<name>.paths.txt``), ``.csv`` (path, e0, e1, ...) or ``.parquet``
    (path, embedding; needs pyarrow). ``precision`` "auto" is bf16 autocast on a CUDA
    device with bf16, float32 elsewhere. An existing ``out`` is refused unless
    ``overwrite``."""
    from ssl_core.eval.embed import run_embedding

    return run_embedding(
        run,
        data,
        out,
        checkpoint=checkpoint,
        batch_size=batch_size,
        accelerator=accelerator,
        precision=precision,
        overwrite=overwrite,
        progress=progress,
    )


def export(
    run: str | Path,
    out: str | Path,
    format: Literal["state_dict", "torchscript", "onnx"] = "state_dict",
    *,
    checkpoint: Checkpoint | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """The backbone as its library's ``state_dict`` (as the run's exported_models/ holds),
    ``torchscript`` or ``onnx`` (batch axis dynamic). TorchScript and ONNX map normalised
    images N×3×H×W to pooled features N×D; each is run again (ONNX with onnxruntime when
    installed: ``pip install 'ssl-core[onnx]'``) and compared with the eager model.
    An existing ``out`` is refused unless ``overwrite``."""
    from ssl_core.eval.export_formats import run_export

    return run_export(run, out, format, checkpoint=checkpoint, overwrite=overwrite)
