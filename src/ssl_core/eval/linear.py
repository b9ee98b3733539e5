"""Linear probe: a linear classifier trained with cross-entropy on frozen, cached features,
the standard measure of what a self-supervised representation makes linearly separable.

The features are standardised (per dimension, with the training features' statistics) and
the classifier fitted full-batch with L-BFGS and an L2 penalty, as a logistic regression is
fitted (scikit-learn's default solver): deterministic, no learning rate to tune, seconds on
a CPU. The penalty matters: on 2,400 CIFAR-10 images, random-init ResNet-18 features
(512-d) scored 26.2% top-1 with 1e-4 and 33.7% with 0.1. So it is chosen from
``WEIGHT_DECAYS`` on a fifth of the training features (never the evaluation images), then
the classifier is fitted on all of them. Papers train with SGD on augmented images instead,
which scores a few points higher; this probe ranks backbones, it does not reproduce
published numbers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from ssl_core.eval.knn import topk_accuracies

# Strongest first: each fit starts from the previous solution, and a tie keeps the
# stronger penalty.
WEIGHT_DECAYS = (1.0, 0.1, 0.01, 0.001, 0.0001)
MAX_ITERATIONS = 100
MIN_SELECTION_IMAGES = 10  # fewer training images: no selection, DEFAULT_WEIGHT_DECAY
DEFAULT_WEIGHT_DECAY = 0.01
SMALL_PROBLEM = 2**22  # features (N·D) below which the probe runs on one CPU thread


class LinearClassifier(nn.Module):
    """Standardisation, then a linear layer."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, linear: nn.Linear) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.linear = linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear((x.float() - self.mean) / self.std)


def fit_linear(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    weight_decay: float,
    start: LinearClassifier | None = None,
    max_iterations: int = MAX_ITERATIONS,
) -> LinearClassifier:
    """A classifier trained on ``features`` (N×D) by L-BFGS on the mean cross-entropy plus
    ``weight_decay``/2 · ‖W‖²; from ``start``'s weights when given, else from zero."""
    x = features.float()
    mean = x.mean(dim=0, keepdim=True)
    std = x.std(dim=0, keepdim=True).nan_to_num(1.0).clamp_min(1e-6)
    x = (x - mean) / std
    y = labels.to(x.device)
    linear = nn.Linear(x.shape[1], num_classes).to(x.device)
    with torch.no_grad():
        if start is None:
            linear.weight.zero_()
            linear.bias.zero_()
        else:
            linear.load_state_dict(start.linear.state_dict())
    optimizer = torch.optim.LBFGS(
        linear.parameters(),
        lr=1.0,
        max_iter=max_iterations,
        history_size=20,
        tolerance_grad=1e-6,
        tolerance_change=1e-9,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(linear(x), y)
        loss = loss + weight_decay / 2 * linear.weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return LinearClassifier(mean, std, linear).eval()


def choose_weight_decay(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int, seed: int = 0
) -> float:
    """The penalty of ``WEIGHT_DECAYS`` with the best top-1 on a seeded fifth of the
    training features, fitted on the other four fifths."""
    count = len(features)
    if count < MIN_SELECTION_IMAGES:
        return DEFAULT_WEIGHT_DECAY
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    held, kept = order[: count // 5].to(features.device), order[count // 5 :].to(features.device)
    best, best_accuracy = DEFAULT_WEIGHT_DECAY, -1.0
    classifier = None
    for weight_decay in WEIGHT_DECAYS:
        classifier = fit_linear(
            features[kept], labels[kept], num_classes, weight_decay, start=classifier
        )
        with torch.no_grad():
            predicted = classifier(features[held]).argmax(dim=1)
        accuracy = (predicted == labels[held].to(predicted.device)).float().mean().item()
        if accuracy > best_accuracy:
            best, best_accuracy = weight_decay, accuracy
    return best


@contextmanager
def threads_for(features: torch.Tensor) -> Iterator[None]:
    """One CPU thread for a small problem: each L-BFGS step is a few tiny products, and
    with a second process busy on a 2-core machine, two threads made the probe of 48×512
    features take 20 s instead of 0.3 s (they wait for each other at every product)."""
    threads = torch.get_num_threads()
    small = features.device.type == "cpu" and features.numel() < SMALL_PROBLEM
    if small:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if small:
            torch.set_num_threads(threads)


def linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    val_features: torch.Tensor,
    val_labels: torch.Tensor,
    num_classes: int,
    ks: Sequence[int] = (1, 5),
    weight_decay: float | None = None,
) -> list[float]:
    """Top-k accuracies (top-1 and top-5 by default) on the validation features of a linear
    classifier fitted on the training features; ``weight_decay`` None: chosen on them."""
    with threads_for(train_features):
        if weight_decay is None:
            weight_decay = choose_weight_decay(train_features, train_labels, num_classes)
        classifier = fit_linear(train_features, train_labels, num_classes, weight_decay)
        with torch.no_grad():
            logits = classifier(val_features.to(train_features.device))
    return topk_accuracies(logits, val_labels, ks)
