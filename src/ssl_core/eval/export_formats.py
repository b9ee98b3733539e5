"""``export``: a run's backbone as its library's state_dict (what the run itself writes), as
TorchScript, or as ONNX; a traced file is run again and compared with the eager model.

TorchScript and ONNX files take images N×3×H×W normalised as in training (any N) and give
the pooled features N×D that ``ssl embed`` writes. ONNX uses torch's TorchScript-based
exporter (``dynamo=False``): it needs no package beyond torch (the torch.export-based one
needs onnxscript) and handles every torchvision and timm backbone we tried. PyTorch marks
``torch.jit.trace`` and that exporter deprecated; their warnings are silenced here because
the user asked for the format.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from ssl_core.data.scan import shown_path
from ssl_core.errors import ConfigError, DiskFull
from ssl_core.eval.embed import check_out
from ssl_core.eval.loading import LoadedBackbone, load_backbone
from ssl_core.eval.results import ExportCheckFailed, ExportResult
from ssl_core.train import checkpoint as ckpt

FORMATS = ("state_dict", "torchscript", "onnx")
CHECK_BATCH = 3  # the trace used 2: a different batch size shows the batch axis is free


def run_export(
    run: str | Path,
    out: str | Path,
    format: str = "state_dict",
    *,
    checkpoint: str | None = None,
    overwrite: bool = False,
) -> ExportResult:
    if format not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {format!r}.")
    out = Path(out).expanduser()
    check_out(out, overwrite)
    if format == "onnx":
        try:
            import onnx  # noqa: F401  # torch's exporter writes the file with it
        except ImportError:
            raise ConfigError(
                "Exporting ONNX needs the onnx package: pip install 'ssl-core[onnx]' (onnx, and "
                "onnxruntime to check the file against the model)."
            ) from None
    loaded = load_backbone(run, checkpoint)
    network = loaded.network.float().eval()
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        if format == "state_dict":
            ckpt.save_atomic(network.original_model().state_dict(), out)
            return ExportResult(
                out, format, loaded.weights, "not needed (the weights as they are)", None
            )
        example = _images(loaded, 2, seed=0)
        if format == "torchscript":
            checked, difference = _torchscript(
                network, example, tmp, _images(loaded, CHECK_BATCH, 1)
            )
        else:
            checked, difference = _onnx(network, example, tmp, _images(loaded, CHECK_BATCH, 1))
        os.replace(tmp, out)
    except OSError as exc:
        raise DiskFull(f"Could not write '{shown_path(out)}': {exc.strerror or exc}.") from None
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(out, format, loaded.weights, checked, difference)


def _images(loaded: LoadedBackbone, batch: int, seed: int) -> torch.Tensor:
    """A normalised-looking batch at the run's image size."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, *loaded.image_size, generator=generator)


def _compare(name: str, got: torch.Tensor, expected: torch.Tensor) -> float:
    """Max absolute difference; raises when the exported file computes other features."""
    difference = (got.float() - expected.float()).abs().max().item()
    scale = max(1.0, expected.abs().max().item())
    if not difference <= 1e-3 * scale:
        raise ExportCheckFailed(
            f"The {name} file computes other features than the model it was made from (max "
            f"difference {difference:.3g} at feature scale {scale:.3g}), so it was not "
            f"written. The backbone likely has input-dependent Python control flow that "
            f"tracing fixed; export format state_dict instead."
        )
    return difference


def _torchscript(
    network: nn.Module, example: torch.Tensor, path: Path, check: torch.Tensor
) -> tuple[str, float | None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        with torch.no_grad():
            traced = torch.jit.trace(network, example, check_trace=False)  # checked below
        torch.jit.save(traced, str(path))
        reloaded = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        difference = _compare("TorchScript", reloaded(check), network(check))
    return f"reloaded with torch.jit.load, batch of {len(check)} against eager", difference


def _onnx(
    network: nn.Module, example: torch.Tensor, path: Path, check: torch.Tensor
) -> tuple[str, float | None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            network,
            (example,),
            str(path),
            dynamo=False,
            input_names=["images"],
            output_names=["features"],
            dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
        )
    try:
        import onnxruntime
    except ImportError:
        import onnx

        onnx.checker.check_model(str(path))
        return (
            "onnx.checker only; install onnxruntime (pip install 'ssl-core[onnx]') to compare "
            "its features with the eager model",
            None,
        )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (features,) = session.run(["features"], {"images": check.numpy()})
    with torch.no_grad():
        difference = _compare("ONNX", torch.from_numpy(features), network(check))
    return f"run with onnxruntime, batch of {len(check)} against eager", difference
