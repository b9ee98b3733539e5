"""Weighted k-nearest-neighbour classification on features (Wu et al. 2018), the usual
quick measure of a self-supervised backbone: cosine similarity, the k most similar bank
features vote with weight exp(similarity / temperature)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ssl_core.transforms.args import IMAGENET_MEAN, IMAGENET_STD


def knn_predict(
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    queries: torch.Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.1,
) -> torch.Tensor:
    bank = nn.functional.normalize(bank.float(), dim=1)
    queries = nn.functional.normalize(queries.float(), dim=1)
    similarity = queries @ bank.T
    top_sim, top_idx = similarity.topk(min(k, bank.shape[0]), dim=1)
    weights = (top_sim / temperature).exp()
    votes = torch.zeros(queries.shape[0], num_classes)
    votes.scatter_add_(1, bank_labels[top_idx], weights)
    return votes.argmax(dim=1)


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
