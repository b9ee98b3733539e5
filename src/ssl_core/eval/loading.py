"""A pretrained backbone from what ``ssl pretrain`` wrote: a run directory, a checkpoint or
an exported backbone, rebuilt from the run's configuration; and the same architecture at
random init, for the comparison that says whether pretraining helped."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from ssl_core.backbones.backbone import Backbone, from_module
from ssl_core.config import TOP_LEVEL_KEYS, ResolvedConfig, resolve
from ssl_core.data.scan import shown_path
from ssl_core.errors import ConfigError, SSLCoreError
from ssl_core.method import build_module
from ssl_core.run_info import RunInfo
from ssl_core.train.model import exported_backbone
from ssl_core.transforms.args import IMAGENET_MEAN, IMAGENET_STD

EXPECTED = (
    "Give a run directory written by `ssl pretrain` (it holds config.json and "
    "checkpoints/last.ckpt), a checkpoint file from its checkpoints/ folder (.ckpt), or an "
    "exported backbone from its exported_models/ folder (.pt)."
)
CHECKPOINTS = ("last", "best")


@dataclass
class LoadedBackbone:
    """A pretrained network: images N×3×H×W (normalised as in training) to features N×D,
    in eval mode on the CPU, with the configuration of the run that trained it."""

    network: Backbone
    weights: Path  # the file the weights were read from
    kind: Literal["checkpoint", "export"]
    config: dict[str, Any]  # the run's config.json
    resolved: ResolvedConfig

    @property
    def image_size(self) -> tuple[int, int]:
        """The run's view size (height, width): what the evaluation crops to."""
        return run_image_size(self.config)

    @property
    def mean(self) -> tuple[float, float, float]:
        return _normalize(self.config)[0]

    @property
    def std(self) -> tuple[float, float, float]:
        return _normalize(self.config)[1]

    def random_init(self, seed: int | None = None) -> Backbone:
        """The same architecture at random init. With ``seed`` None, the run's own seed:
        the very weights its training started from (the engine seeds, then builds)."""
        return random_backbone(self.resolved, self.resolved.args.seed if seed is None else seed)


def load_backbone(path: str | Path, checkpoint: str | None = None) -> LoadedBackbone:
    """The backbone a run exports, from ``path``: a run directory (its
    ``checkpoints/{checkpoint}.ckpt``, else ``exported_models/exported_{checkpoint}.pt``;
    ``checkpoint`` is "last" by default or "best"), a checkpoint file (the method's module is
    rebuilt as training builds it and its ``exported_backbone()`` taken: the teacher for
    DINO and BYOL), or an exported backbone file (with its run's config.json in the folder
    above ``exported_models/``)."""
    path = Path(path).expanduser()
    if checkpoint is not None and checkpoint not in CHECKPOINTS:
        raise ConfigError(f"checkpoint must be 'last' or 'best', got {checkpoint!r}.")
    if not path.exists():
        raise ConfigError(f"'{shown_path(path)}' does not exist. {EXPECTED}")
    if path.is_dir():
        return _load_run_dir(path, checkpoint or "last")
    if checkpoint is not None:
        raise ConfigError(
            f"checkpoint={checkpoint!r} chooses a file in a run directory, but "
            f"'{shown_path(path)}' is a file already: give its run directory instead, or leave "
            f"checkpoint out."
        )
    return _load_file(path)


def _load_run_dir(run: Path, which: str) -> LoadedBackbone:
    if not (run / "config.json").is_file():
        raise ConfigError(
            f"'{shown_path(run)}' is a directory but not a run directory: it has no "
            f"config.json. {EXPECTED}"
        )
    candidates = (
        run / "checkpoints" / f"{which}.ckpt",
        run / "exported_models" / f"exported_{which}.pt",
    )
    for candidate in candidates:
        if candidate.is_file():
            return _load_file(candidate)
    hint = (
        " A best checkpoint is kept only when the run monitors a labelled --val-data."
        if which == "best"
        else " Has its training written a first checkpoint yet?"
    )
    raise ConfigError(
        f"Run directory '{shown_path(run)}' holds neither "
        + " nor ".join(f"'{c.relative_to(run)}'" for c in candidates)
        + f".{hint}"
    )


def _load_file(path: Path) -> LoadedBackbone:
    saved = _read(path)
    if isinstance(saved, Mapping) and "model" in saved and "config" in saved:
        return _from_checkpoint(path, saved)
    if isinstance(saved, Mapping) and saved and all(torch.is_tensor(v) for v in saved.values()):
        return _from_export(path, dict(saved))
    raise ConfigError(
        f"'{shown_path(path)}' holds neither a checkpoint (a dict with 'model' and 'config') "
        f"nor an exported backbone (a state_dict of tensors). {EXPECTED}"
    )


def _read(path: Path) -> Any:
    """Tensors and plain containers only: unpickling arbitrary objects could run code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = (lines[0] if lines else type(exc).__name__)[:200].rstrip(".")
        raise ConfigError(
            f"Cannot read '{shown_path(path)}' as a checkpoint or exported backbone "
            f"({type(exc).__name__}: {reason}). {EXPECTED}"
        ) from None


def _from_checkpoint(path: Path, saved: Mapping[str, Any]) -> LoadedBackbone:
    config = dict(saved["config"])
    resolved = resolve_run_config(config, path)
    args = resolved.args
    run = RunInfo(
        epochs=resolved.epochs,
        steps_per_epoch=1,
        global_batch_size=args.batch_size,
    )
    method = resolved.method_cls(resolved.method_args)
    if hasattr(method, "resolve_auto"):
        # A run of an older version may have left "auto" in its config.json; the value
        # chosen here may size a head differently, which only the fallback below sees.
        method = resolved.method_cls(method.resolve_auto(run))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        module = build_module(method, resolved.backbone.build(), run)
    network = exported_backbone(module)
    try:
        module.load_state_dict(saved["model"])
    except RuntimeError as exc:
        # Only the exported network must match: a head whose size followed the data
        # (an "auto" setting) may differ, and the evaluation never uses it.
        prefix = _submodule_name(module, network)
        if prefix is None:
            raise _mismatch(path, exc) from None
        state = {
            key[len(prefix) + 1 :]: value
            for key, value in saved["model"].items()
            if key.startswith(prefix + ".")
        }
        try:
            network.load_state_dict(state)
        except RuntimeError as inner:
            raise _mismatch(path, inner) from None
    return LoadedBackbone(_as_backbone(network, args.model), path, "checkpoint", config, resolved)


def _submodule_name(module: nn.Module, network: nn.Module) -> str | None:
    for name, child in module.named_modules():
        if child is network and name:
            return name
    return None


def _from_export(path: Path, state: dict[str, Any]) -> LoadedBackbone:
    config_path = next(
        (
            p
            for p in (path.parent.parent / "config.json", path.parent / "config.json")
            if p.is_file()
        ),
        None,
    )
    if config_path is None:
        raise ConfigError(
            f"'{shown_path(path)}' looks like an exported backbone, but its run's config.json "
            f"(which says which architecture to build) is neither in "
            f"'{shown_path(path.parent.parent)}' nor in '{shown_path(path.parent)}'. Keep the "
            f"file in its run's exported_models/ folder, or give the run directory."
        )
    config = read_config(config_path)
    resolved = resolve_run_config(config, path)
    with torch.random.fork_rng(devices=[]):
        backbone = resolved.backbone.build()
    try:
        backbone.original_model().load_state_dict(state)
    except RuntimeError as exc:
        raise _mismatch(path, exc, config_path) from None
    return LoadedBackbone(backbone.eval(), path, "export", config, resolved)


def _mismatch(path: Path, exc: Exception, config_path: Path | None = None) -> ConfigError:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = "; ".join(lines[1:4] or lines[:1])[:400]
    where = f"its config.json ('{shown_path(config_path)}')" if config_path else "its config"
    return ConfigError(
        f"The weights in '{shown_path(path)}' do not fit the model {where} describes "
        f"({detail}). Was the file moved into another run's folder?"
    )


def _as_backbone(network: nn.Module, name: str) -> Backbone:
    """Methods export a registry Backbone; a method's own network is wrapped (features
    pooled the same way)."""
    backbone = network if isinstance(network, Backbone) else from_module(network, name)
    return backbone.eval()


def read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"Cannot read the run configuration '{shown_path(path)}': {exc}."
        ) from None
    if not isinstance(config, dict):
        raise ConfigError(f"'{shown_path(path)}' is not a run configuration (a JSON object).")
    return config


def resolve_run_config(config: Mapping[str, Any], source: Path) -> ResolvedConfig:
    """The run's configuration validated as ``pretrain`` validates it, to rebuild its model."""
    model = str(config.get("model", ""))
    if model.startswith("custom/"):
        raise ConfigError(
            f"'{shown_path(source)}' was trained on your own nn.Module ({model}), which ssl-core "
            f"cannot rebuild: construct that module yourself and load_state_dict() the "
            f"exported file."
        )
    values = {k: v for k, v in config.items() if k in TOP_LEVEL_KEYS}
    values.update(overwrite=False, resume=False)
    try:
        return resolve(values)
    except SSLCoreError as exc:
        raise ConfigError(
            f"Cannot rebuild the model of '{shown_path(source)}' from its run configuration: {exc}"
        ) from None


def random_backbone(resolved: ResolvedConfig, seed: int) -> Backbone:
    """The run's architecture at random init; the same seed gives the same weights. The
    caller's random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone = resolved.backbone.build()
    return backbone.eval()


def run_image_size(config: Mapping[str, Any]) -> tuple[int, int]:
    """The run's view size from config.json (``transform_args.image_size``)."""
    size = (config.get("transform_args") or {}).get("image_size")
    if isinstance(size, int):
        return (size, size)
    if isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(s, int) for s in size):
        return (int(size[0]), int(size[1]))
    raise ConfigError(
        f"The run configuration gives no image size (transform_args.image_size is {size!r}): "
        f"the evaluation crops images to the size the backbone was trained at."
    )


def _normalize(
    config: Mapping[str, Any],
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    normalize = (config.get("transform_args") or {}).get("normalize") or {}
    mean = tuple(float(v) for v in normalize.get("mean", IMAGENET_MEAN))
    std = tuple(float(v) for v in normalize.get("std", IMAGENET_STD))
    return mean, std  # type: ignore[return-value]
