"""``evaluate``: kNN and linear-probe accuracy of a pretrained backbone on labelled folders,
beside the same architecture at random init, so that "did pretraining help?" is a number."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ssl_core.errors import ConfigError
from ssl_core.eval.features import (
    choose_device,
    extract_features,
    held_out_split,
    inference_precision,
    progress_bar,
    scan_labelled,
    skipped_files,
)
from ssl_core.eval.knn import knn_topk
from ssl_core.eval.linear import linear_probe
from ssl_core.eval.loading import load_backbone
from ssl_core.eval.results import EvaluationResult, Scores


def run_evaluation(
    run: str | Path,
    train_data: str | Path,
    val_data: str | Path | None = None,
    *,
    checkpoint: str | None = None,
    k: int = 20,
    temperature: float = 0.1,
    val_fraction: float = 0.2,
    seed: int = 0,
    batch_size: int = 128,
    accelerator: str = "auto",
    precision: str = "auto",
    progress: bool = True,
) -> EvaluationResult:
    started = time.perf_counter()
    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}.")
    if not temperature > 0:
        raise ConfigError(f"temperature must be positive, got {temperature}.")
    device = choose_device(accelerator)
    precision = inference_precision(precision, device)
    train = scan_labelled(train_data, "train_data")
    if len(train.classes) < 2:
        raise ConfigError(
            f"Evaluation needs at least two classes (class subfolders of train_data); "
            f"'{train_data}' has only {', '.join(train.classes)}."
        )
    if val_data is not None:
        val = scan_labelled(val_data, "val_data", train.classes)
        split = f"val_data {val_data}"
    else:
        train, val = held_out_split(train, val_fraction, seed)
        split = f"{val_fraction:.0%} of each class of train_data held out (seed {seed})"
    loaded = load_backbone(run, checkpoint)
    networks = [loaded.network, loaded.random_init()]
    total = 2 * (len(train.files) + len(val.files))
    parts = []
    with progress_bar(total, "Features", progress) as advance:
        for data in (train, val):
            features, kept, skipped = extract_features(
                networks,
                data.files,
                loaded.image_size,
                loaded.mean,
                loaded.std,
                device,
                precision,
                batch_size,
                progress=lambda n: advance(2 * n),
                as_training=True,  # the online monitor's figures, exactly
            )
            labels = torch.tensor([data.labels[i] for i in kept])
            parts.append((features, labels, skipped))
    (train_feats, train_labels, train_skipped), (val_feats, val_labels, val_skipped) = parts
    _check_split(train_labels, val_labels)
    num_classes = len(train.classes)
    scores = [
        _scores(
            train_feats[i].to(device),
            train_labels,
            val_feats[i].to(device),
            val_labels,
            num_classes,
            k,
            temperature,
        )
        for i in range(len(networks))
    ]
    config = loaded.config
    return EvaluationResult(
        weights=loaded.weights,
        model=str(config.get("model")),
        method=str(config.get("method")),
        pretrained=scores[0],
        random_init=scores[1],
        classes=train.classes,
        train_images=len(train_labels),
        val_images=len(val_labels),
        split=split,
        k=k,
        temperature=temperature,
        image_size=loaded.image_size,
        device=str(device),
        precision=precision,
        seconds=time.perf_counter() - started,
        skipped=skipped_files(train_skipped) + skipped_files(val_skipped),
    )


def _check_split(train_labels: torch.Tensor, val_labels: torch.Tensor) -> None:
    if len(val_labels) == 0:
        raise ConfigError(
            "No readable images are left to evaluate on: give --val-data, or more images per "
            "class in --train-data (a class needs two or more for one to be held out)."
        )
    if len(train_labels) == 0:
        raise ConfigError("No readable training images: the kNN bank would be empty.")


def _scores(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    val_feats: torch.Tensor,
    val_labels: torch.Tensor,
    num_classes: int,
    k: int,
    temperature: float,
) -> Scores:
    ks = (1, 5) if num_classes > 5 else (1,)
    knn = knn_topk(
        train_feats, train_labels, val_feats, val_labels, num_classes, k, temperature, ks
    )
    linear = linear_probe(train_feats, train_labels, val_feats, val_labels, num_classes, ks)
    return Scores(
        knn_top1=knn[0],
        knn_top5=knn[1] if len(ks) > 1 else None,
        linear_top1=linear[0],
        linear_top5=linear[1] if len(ks) > 1 else None,
    )
