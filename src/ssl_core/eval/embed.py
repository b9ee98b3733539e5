"""``embed``: one feature vector per image file, with its path relative to the data folder,
written as .npy (+ a .paths.txt beside it), .csv or .parquet."""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from ssl_core.data.scan import scan_images, shown_path
from ssl_core.errors import ConfigError, DiskFull
from ssl_core.eval.features import (
    choose_device,
    extract_features,
    inference_precision,
    progress_bar,
    skipped_files,
)
from ssl_core.eval.loading import load_backbone
from ssl_core.eval.results import EmbedResult

FORMATS = (".npy", ".csv", ".parquet")


def paths_file_of(out: Path) -> Path:
    """``emb.npy`` -> ``emb.paths.txt``."""
    return out.with_suffix(".paths.txt")


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse a file that exists (unless ``overwrite``), a folder, or a missing parent."""
    if out.is_dir():
        raise ConfigError(f"out '{shown_path(out)}' is a directory: give a file name.")
    if out.exists() and not overwrite:
        raise ConfigError(
            f"'{shown_path(out)}' exists already: give --overwrite (overwrite=True) to replace "
            f"it, or another --out."
        )
    if not out.parent.is_dir():
        raise ConfigError(f"The folder of out '{shown_path(out)}' does not exist: create it first.")


def _check_format(out: Path) -> str:
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(
            f"Cannot tell the format of out '{shown_path(out)}' from its suffix: use "
            f"{', '.join(FORMATS)}."
        )
    if suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ConfigError(
                "Writing .parquet needs pyarrow, which is not installed: `pip install pyarrow`, "
                "or write .npy or .csv instead."
            ) from None
    if suffix == ".npy":
        try:
            import numpy  # noqa: F401
        except ImportError:
            raise ConfigError(
                "Writing .npy needs numpy: `pip install numpy`, or write .csv instead."
            ) from None
    return suffix


def run_embedding(
    run: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    checkpoint: str | None = None,
    batch_size: int = 128,
    accelerator: str = "auto",
    precision: str = "auto",
    overwrite: bool = False,
    progress: bool = True,
) -> EmbedResult:
    started = time.perf_counter()
    out = Path(out).expanduser()
    suffix = _check_format(out)
    check_out(out, overwrite)
    if suffix == ".npy":
        check_out(paths_file_of(out), overwrite)
    device = choose_device(accelerator)
    precision = inference_precision(precision, device)
    root = Path(data).expanduser()
    files = scan_images(root)
    loaded = load_backbone(run, checkpoint)
    computing = time.perf_counter()
    with progress_bar(len(files), "Embedding", progress) as advance:
        (features,), kept, skipped = extract_features(
            [loaded.network],
            files,
            loaded.image_size,
            loaded.mean,
            loaded.std,
            device,
            precision,
            batch_size,
            progress=advance,
        )
    seconds = time.perf_counter() - computing
    names = [_relative(files[i], root) for i in kept]
    paths_file = _write(out, suffix, names, features)
    return EmbedResult(
        out=out,
        paths_file=paths_file,
        images=len(names),
        dim=int(features.shape[1]),
        seconds=time.perf_counter() - started,
        images_per_second=len(names) / max(seconds, 1e-9),
        device=str(device),
        precision=precision,
        skipped=skipped_files(skipped),
    )


def _relative(path: Path, root: Path) -> str:
    if root.is_dir():
        return shown_path(path.relative_to(root).as_posix())
    return shown_path(path.name)


def _write(out: Path, suffix: str, names: Sequence[str], features: torch.Tensor) -> Path | None:
    """Each file whole or not at all: written beside, then renamed."""
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    paths_file = None
    try:
        if suffix == ".npy":
            import numpy as np

            with open(tmp, "wb") as handle:
                np.save(handle, features.numpy())
            paths_file = paths_file_of(out)
            paths_tmp = paths_file.with_name(f".{paths_file.name}.tmp-{os.getpid()}")
            paths_tmp.write_text("".join(f"{name}\n" for name in names), encoding="utf-8")
            os.replace(paths_tmp, paths_file)
        elif suffix == ".csv":
            with open(tmp, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(["path", *(f"e{i}" for i in range(features.shape[1]))])
                for name, row in zip(names, features.tolist(), strict=True):
                    writer.writerow([name, *(repr(v) for v in row)])
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            dim = int(features.shape[1])
            flat = pa.array(features.reshape(-1).numpy(), type=pa.float32())
            table = pa.table(
                {
                    "path": pa.array(list(names), type=pa.string()),
                    "embedding": pa.FixedSizeListArray.from_arrays(flat, dim),
                }
            )
            pq.write_table(table, tmp)
        os.replace(tmp, out)
    except OSError as exc:
        raise DiskFull(f"Could not write '{shown_path(out)}': {exc.strerror or exc}.") from None
    finally:
        tmp.unlink(missing_ok=True)
    return paths_file
