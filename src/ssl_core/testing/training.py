"""A few real training steps of a method, and the check that what it exported loads into
the backbone's own library."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor, nn

    from ssl_core import Backbone
    from ssl_core.results import PretrainResult


def train_steps(
    method: str,
    data: str | Path,
    *,
    out: str | Path,
    model: str = "torchvision/resnet18",
    steps: int = 2,
    image_size: int = 32,
    **pretrain_options: Any,
) -> PretrainResult:
    """``steps`` real training steps of ``method`` on the images in ``data`` with
    ``pretrain()``: on the CPU, in float32, without loader workers, views of ``image_size``
    px. The batch is the images divided among the steps (of every epoch, with ``epochs``),
    unless ``batch_size`` is given, when images // batch_size × epochs must be ``steps``.
    ``pretrain_options`` are ``pretrain()``'s other arguments (``method_args`` to make the
    heads small). Returns what ``pretrain()`` returns, having checked the number of steps
    and that every logged loss is finite."""
    import math

    import ssl_core
    from ssl_core.data.scan import scan_images

    images = len(scan_images(data))
    epochs = pretrain_options.pop("epochs", 1)
    if steps % epochs:
        raise ValueError(f"steps={steps} do not divide into epochs={epochs}")
    batch_size = pretrain_options.pop("batch_size", images // (steps // epochs))
    if batch_size < 1 or images // batch_size * epochs != steps:
        raise ValueError(
            f"{images} images in batches of {batch_size} over {epochs} epoch(s) make "
            f"{images // max(batch_size, 1) * epochs} steps, not {steps}: change the images, "
            f"steps, epochs or batch_size"
        )
    settings: dict[str, Any] = {
        "num_workers": 0,
        "accelerator": "cpu",
        "precision": "32-true",
        "devices": 1,
        **pretrain_options,
        "transform_args": {"image_size": image_size, **pretrain_options.get("transform_args", {})},
    }
    result = ssl_core.pretrain(
        out=out,
        data=data,
        model=model,
        method=method,
        epochs=epochs,
        batch_size=batch_size,
        **settings,
    )
    assert result.steps == steps, f"{result.steps} steps were trained, not {steps}"
    rows = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    losses = [row["loss"] for row in rows]
    assert len(rows) == steps and all(math.isfinite(loss) for loss in losses), losses
    return result


def check_export_loads(result: PretrainResult) -> Tensor:
    """The backbone a run exported loads into its own library's model: a torchvision model
    from ``torchvision.models`` with only its classifier missing, a timm model from
    ``timm.create_model(num_classes=0)`` with every key; other providers' backbones as
    ``ssl evaluate`` loads them. That model turns two images of the run's size into finite
    features, which are returned (2×D)."""
    import torch

    config = json.loads((Path(result.out) / "config.json").read_text())
    library, _, name = config["model"].partition("/")
    model_args = config.get("model_args") or {}
    state = torch.load(result.exported_model, map_location="cpu", weights_only=True)
    if library == "torchvision":
        network = _torchvision_model(name, model_args, state)
    elif library == "timm":
        import timm

        network = timm.create_model(name, pretrained=False, num_classes=0, **model_args)
        network.load_state_dict(state)
    else:
        from ssl_core.eval.loading import load_backbone

        network = load_backbone(result.exported_model).network
    height, width = _view_size(config)
    network.eval()
    images = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        features = network(images)
    assert features.ndim == 2 and len(features) == 2, f"features of shape {tuple(features.shape)}"
    assert torch.isfinite(features).all(), "the exported backbone computes non-finite features"
    return features


def _torchvision_model(name: str, model_args: dict[str, Any], state: dict[str, Any]) -> nn.Module:
    """torchvision's own model with the export loaded: only the final Linear of its
    classifier may be missing (and then gives way to an identity, for features)."""
    import torchvision
    from torch import nn

    network = torchvision.models.get_model(name, weights=None, **model_args)
    loaded = network.load_state_dict(state, strict=False)
    assert not loaded.unexpected_keys, f"keys torchvision's {name} lacks: {loaded.unexpected_keys}"
    head_name = next(a for a in ("fc", "classifier", "heads", "head") if hasattr(network, a))
    head = getattr(network, head_name)
    if isinstance(head, nn.Linear):
        last_name, parent = head_name, network
    else:
        index = max(i for i, m in enumerate(head) if isinstance(m, nn.Linear))
        last_name, parent = str(index), head
        head_name = f"{head_name}.{index}"
    classifier = {f"{head_name}.{key}" for key in getattr(parent, last_name).state_dict()}
    assert set(loaded.missing_keys) <= classifier, (
        f"keys the export lacks besides the classifier: {set(loaded.missing_keys) - classifier}"
    )
    setattr(parent, last_name, nn.Identity())
    return network


def _view_size(config: dict[str, Any]) -> tuple[int, int]:
    size = config.get("transform_args", {}).get("image_size", 32)
    if isinstance(size, (list, tuple)):
        return int(size[0]), int(size[1])
    return (int(size), int(size)) if isinstance(size, int) else (32, 32)


def tiny_net() -> nn.Module:
    """A 300-parameter conv net with BatchNorm, the same weights every call: a backbone
    for unit tests of a method's module (``tiny_backbone``) or ``pretrain(model=...)``."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


def tiny_backbone() -> Backbone:
    """``tiny_net`` as the ``Backbone`` a method's ``build(backbone, run)`` receives
    (8 features)."""
    from ssl_core.backbones.backbone import from_module

    return from_module(tiny_net())
