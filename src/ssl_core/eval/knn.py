"""Weighted k-nearest-neighbour classification on features (Wu et al. 2018), the usual
quick measure of a self-supervised backbone: cosine similarity, the k most similar bank
features vote with weight exp(similarity / temperature)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ssl_core.transforms.args import IMAGENET_MEAN, IMAGENET_STD

# Similarities computed at once, at most: a 50k-image bank against 50k queries would take
# 10 GB; in slices of this many entries it takes 256 MB.
SIMILARITY_CHUNK = 2**26


def knn_votes(
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    queries: torch.Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.1,
    chunk: int = SIMILARITY_CHUNK,
) -> torch.Tensor:
    """Each query's vote per class (Q×C): the k most cosine-similar bank features, each
    weighted exp(similarity / temperature). Queries go in slices of about ``chunk``
    similarities, so memory stays bounded."""
    if k < 1 or temperature <= 0:
        raise ValueError(f"k must be at least 1 and temperature positive, got {k}, {temperature}")
    bank = nn.functional.normalize(bank.float(), dim=1)
    queries = nn.functional.normalize(queries.float(), dim=1)
    bank_labels = bank_labels.to(bank.device)
    votes = torch.zeros(queries.shape[0], num_classes, device=bank.device)
    step = max(1, chunk // max(1, bank.shape[0]))
    for start in range(0, queries.shape[0], step):
        similarity = queries[start : start + step] @ bank.T
        top_sim, top_idx = similarity.topk(min(k, bank.shape[0]), dim=1)
        weights = (top_sim / temperature).exp()
        votes[start : start + step].scatter_add_(1, bank_labels[top_idx], weights)
    return votes


def knn_predict(
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    queries: torch.Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.1,
) -> torch.Tensor:
    return knn_votes(bank, bank_labels, queries, num_classes, k, temperature).argmax(dim=1)


def topk_accuracies(
    scores: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)
) -> list[float]:
    """Fraction of rows whose label is among its ``k`` highest scores, for each k; ties
    rank the lower class index first (as argmax does), so the result is well defined."""
    order = scores.argsort(dim=1, descending=True, stable=True)
    hits = order == labels.to(order.device).view(-1, 1)
    return [hits[:, :k].any(dim=1).float().mean().item() for k in ks]


def knn_topk(
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    queries: torch.Tensor,
    query_labels: torch.Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.1,
    ks: Sequence[int] = (1, 5),
) -> list[float]:
    """Weighted kNN top-k accuracies (top-1 and top-5 by default) of the queries."""
    votes = knn_votes(bank, bank_labels, queries, num_classes, k, temperature)
    return topk_accuracies(votes, query_labels, ks)


def knn_accuracy(
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    queries: torch.Tensor,
    query_labels: torch.Tensor,
    k: int = 20,
    temperature: float = 0.1,
) -> float:
    num_classes = int(max(bank_labels.max(), query_labels.max())) + 1
    predicted = knn_predict(bank, bank_labels, queries, num_classes, k, temperature)
    return (predicted == query_labels).float().mean().item()


def knn_of_backbone(
    backbone: nn.Module,
    bank: Sequence[torch.Tensor],
    bank_labels: torch.Tensor,
    queries: Sequence[torch.Tensor],
    query_labels: torch.Tensor,
    k: int = 20,
    temperature: float = 0.1,
) -> float:
    """kNN top-1 of ``backbone``'s features: bank and query images (uint8, one size)."""
    return knn_accuracy(
        embed_images(backbone, bank),
        bank_labels,
        embed_images(backbone, queries),
        query_labels,
        k,
        temperature,
    )


@torch.no_grad()
def embed_images(
    backbone: nn.Module,
    images: Sequence[torch.Tensor],
    batch_size: int = 256,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """Features of uint8 RGB images of one size (3×H×W), normalised like training."""
    was_training = backbone.training
    backbone.eval()
    mean_t = torch.tensor(mean).view(1, 3, 1, 1)
    std_t = torch.tensor(std).view(1, 3, 1, 1)
    features = []
    for start in range(0, len(images), batch_size):
        batch = torch.stack(list(images[start : start + batch_size])).float() / 255
        out = backbone((batch - mean_t) / std_t)
        features.append(out.flatten(1) if out.dim() > 2 else out)
    backbone.train(was_training)
    return torch.cat(features)
