"""The kNN classifier against a plain loop over the published rule."""

from __future__ import annotations

import math

import torch

from ssl_core.eval.knn import knn_accuracy, knn_predict


def naive_knn(bank, labels, query, k, temperature, num_classes):
    def unit(v):
        n = math.sqrt(sum(x * x for x in v))
        return [x / n for x in v]

    b = [unit(v) for v in bank.tolist()]
    q = unit(query.tolist())
    sims = sorted(
        ((sum(x * y for x, y in zip(q, v, strict=True)), i) for i, v in enumerate(b)), reverse=True
    )[:k]
    votes = [0.0] * num_classes
    for sim, i in sims:
        votes[int(labels[i])] += math.exp(sim / temperature)
    return max(range(num_classes), key=lambda c: votes[c])


def test_matches_naive_implementation():
    generator = torch.Generator().manual_seed(0)
    bank = torch.randn(60, 8, generator=generator)
    labels = torch.randint(0, 4, (60,), generator=generator)
    queries = torch.randn(25, 8, generator=generator)
    got = knn_predict(bank, labels, queries, num_classes=4, k=7, temperature=0.2)
    expected = [naive_knn(bank, labels, q, 7, 0.2, 4) for q in queries]
    assert got.tolist() == expected


def test_separable_clusters_are_classified_perfectly():
    generator = torch.Generator().manual_seed(1)
    centers = torch.eye(3) * 10
    labels = torch.arange(3).repeat_interleave(20)
    bank = centers[labels] + torch.randn(60, 3, generator=generator)
    assert knn_accuracy(bank, labels, bank, labels, k=5) == 1.0
