"""NT-Xent against an independent float64 reference written from the published definition."""

from __future__ import annotations

import math

import pytest
import torch

from ssl_simclr import NTXentLoss, SimCLRProjectionHead


def reference_nt_xent(z0: torch.Tensor, z1: torch.Tensor, temperature: float) -> float:
    """SimCLR eq. 1 with plain Python floats: views 2k and 2k+1 are a positive pair."""
    views = []
    for a, b in zip(z0.tolist(), z1.tolist(), strict=True):
        views.extend([a, b])

    def unit(v):
        norm = math.sqrt(sum(x * x for x in v))
        return [x / norm for x in v]

    views = [unit(v) for v in views]
    total = 0.0
    for i, anchor in enumerate(views):
        positive = i + 1 if i % 2 == 0 else i - 1
        sims = {
            j: sum(x * y for x, y in zip(anchor, other, strict=True)) / temperature
            for j, other in enumerate(views)
            if j != i
        }
        top = max(sims.values())
        log_denominator = top + math.log(sum(math.exp(s - top) for s in sims.values()))
        total += log_denominator - sims[positive]
    return total / len(views)


@pytest.mark.parametrize("n", [2, 5, 16])
@pytest.mark.parametrize("d", [3, 32])
@pytest.mark.parametrize("temperature", [0.07, 0.1, 0.5, 1.0])
def test_matches_float64_reference(n, d, temperature):
    generator = torch.Generator().manual_seed(n * 1000 + d)
    z0 = torch.randn(n, d, generator=generator)
    z1 = torch.randn(n, d, generator=generator)
    expected = reference_nt_xent(z0.double(), z1.double(), temperature)
    got64 = NTXentLoss(temperature)(z0.double(), z1.double()).item()
    assert got64 == pytest.approx(expected, rel=1e-6)
    got32 = NTXentLoss(temperature)(z0, z1).item()  # float32 path
    assert got32 == pytest.approx(expected, rel=1e-5)


def test_gradcheck_float64():
    generator = torch.Generator().manual_seed(0)
    z0 = torch.randn(4, 6, dtype=torch.float64, generator=generator, requires_grad=True)
    z1 = torch.randn(4, 6, dtype=torch.float64, generator=generator, requires_grad=True)
    assert torch.autograd.gradcheck(NTXentLoss(0.3), (z0, z1))


def test_identical_views_give_lower_loss_than_random_ones():
    torch.manual_seed(1)
    z0 = torch.randn(32, 16)
    loss = NTXentLoss(0.1)
    assert loss(z0, z0.clone()) < loss(z0, torch.randn(32, 16))


def test_finite_for_large_and_zero_inputs():
    loss = NTXentLoss(0.1)
    big = torch.randn(8, 4) * 1e4
    assert torch.isfinite(loss(big, big.flip(0)))
    zeros = torch.zeros(8, 4, requires_grad=True)
    value = loss(zeros, torch.randn(8, 4))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(zeros.grad).all()


def test_float32_under_bf16_autocast():
    torch.manual_seed(2)
    z0, z1 = torch.randn(8, 16), torch.randn(8, 16)
    expected = reference_nt_xent(z0.double(), z1.double(), 0.1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = NTXentLoss(0.1)(z0.bfloat16(), z1.bfloat16())
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(expected, rel=2e-2)  # inputs were rounded to bf16


def test_bad_shapes_and_temperature_are_rejected():
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(0)
    with pytest.raises(ValueError, match="two N×D tensors"):
        NTXentLoss()(torch.randn(3, 4), torch.randn(2, 4))


def test_matches_lightly_when_installed():
    lightly_loss = pytest.importorskip("lightly.loss", reason="lightly is not installed")
    torch.manual_seed(3)
    z0, z1 = torch.randn(10, 8), torch.randn(10, 8)
    theirs = lightly_loss.NTXentLoss(temperature=0.2)(z0, z1)
    assert NTXentLoss(0.2)(z0, z1).item() == pytest.approx(theirs.item(), rel=1e-5)


def test_projection_head_layers():
    head = SimCLRProjectionHead(512, 2048, 128, num_layers=2, batch_norm=True)
    kinds = [type(m).__name__ for m in head]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d"]
    assert head[0].bias is None and head[3].bias is None
    assert (head[0].in_features, head[0].out_features) == (512, 2048)
    assert (head[3].in_features, head[3].out_features) == (2048, 128)
    assert head(torch.randn(4, 512)).shape == (4, 128)

    plain = SimCLRProjectionHead(64, 32, 16, num_layers=3, batch_norm=False)
    assert [type(m).__name__ for m in plain] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert plain[0].bias is not None
