"""``pretrain``: the one call users make. Validates everything, then starts the engine."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ssl_core import config, main_guard
from ssl_core.pretrain_args import arguments_docstring

if TYPE_CHECKING:
    from torch import nn

    from ssl_core.results import PretrainResult


def pretrain(
    out: str | Path,
    data: str | Path | Sequence[str | Path],
    model: str | nn.Module,
    method: str = "simclr",
    method_args: dict[str, Any] | None = None,
    transform_args: dict[str, Any] | None = None,
    epochs: int | None = None,
    batch_size: int = 256,
    num_workers: int | Literal["auto"] = "auto",
    devices: int | Literal["auto"] = "auto",
    accelerator: Literal["auto", "cpu", "cuda"] = "auto",
    precision: Literal["auto", "32-true", "bf16-mixed"] = "auto",
    seed: int = 0,
    overwrite: bool = False,
    resume: bool = False,
    optim_args: dict[str, Any] | None = None,
    model_args: dict[str, Any] | None = None,
    cache_images: bool | Literal["auto"] = "auto",
    augment_on_device: bool = True,
    checkpoint_every_steps: int | None = None,
    checkpoint_every_minutes: float | None = 10.0,
    compile: bool = False,
    val_data: str | Path | None = None,
    val_every_epochs: int | Literal["auto"] = "auto",
) -> PretrainResult:
    """Pretrain ``model`` on the images in ``data`` with ``method``; write results to ``out``.

    ``out`` receives ``train.log``, ``config.json``, ``metrics.jsonl``,
    ``checkpoints/last.ckpt`` and ``exported_models/exported_last.pt`` (the backbone's
    state_dict in its library's own format). ``model`` is a registry name such as
    ``torchvision/resnet18`` or ``timm/resnet50``, or your own ``nn.Module``. ``batch_size``
    is the global batch over all devices. With ``val_data`` (a labelled folder) the kNN
    accuracy is logged every few epochs and the best checkpoint and export are kept beside
    the last. Every argument is validated before any data is read or model built; mistakes
    raise ``ssl_core.SSLCoreError`` subclasses. The arguments are those of ``ssl pretrain``
    (its options and ``KEY=VALUE`` pairs), described below from their one schema,
    ``PretrainArgs``.
    """
    main_guard.stop_if_importing_main()  # a process of devices=N re-running the script
    values = {k: v for k, v in locals().items()}
    return run(config.resolve(values))


# The arguments' descriptions and defaults come from the schema, as the CLI's do.
pretrain.__doc__ = (pretrain.__doc__ or "").rstrip() + "\n\n" + arguments_docstring()


def run(resolved: config.ResolvedConfig) -> PretrainResult:
    """Train on one process, on ``devices`` processes started here, or on the processes of an
    external launcher (torchrun, srun) when its environment is present."""
    from ssl_core.train.launch import launch

    return launch(resolved)
