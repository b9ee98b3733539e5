"""Two real processes (gloo): gathered negatives make the split batch equal the whole one."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ssl_simclr import NTXentLoss

WORLD = 2
N_PER_RANK = 3
DIM = 5


def global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    return (
        torch.randn(WORLD * N_PER_RANK, DIM, generator=generator),
        torch.randn(WORLD * N_PER_RANK, DIM, generator=generator),
    )


def _rank_main(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        z0_all, z1_all = global_batch()
        part = slice(rank * N_PER_RANK, (rank + 1) * N_PER_RANK)
        z0 = z0_all[part].clone().requires_grad_(True)
        z1 = z1_all[part].clone().requires_grad_(True)
        loss = NTXentLoss(0.2)(z0, z1)
        loss.backward()
        torch.save(
            {"loss": loss.detach(), "g0": z0.grad, "g1": z1.grad},
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


def test_two_processes_equal_one_process_on_the_global_batch(tmp_path):
    mp.spawn(_rank_main, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    z0_all, z1_all = global_batch()
    z0 = z0_all.clone().requires_grad_(True)
    z1 = z1_all.clone().requires_grad_(True)
    expected = NTXentLoss(0.2)(z0, z1)
    expected.backward()

    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    # Each rank's loss is the mean over its own anchors; their mean (what DDP's gradient
    # averaging optimises) is the global loss, and each rank saw 2·N·W-2 negatives.
    mean_loss = sum(r["loss"] for r in results) / WORLD
    torch.testing.assert_close(mean_loss, expected.detach(), rtol=1e-6, atol=1e-6)
    for rank, result in enumerate(results):
        part = slice(rank * N_PER_RANK, (rank + 1) * N_PER_RANK)
        # The gather's backward sums all ranks' gradients, so each rank holds W times the
        # gradient of the averaged loss; DDP's division by W then gives the global gradient.
        torch.testing.assert_close(result["g0"] / WORLD, z0.grad[part], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(result["g1"] / WORLD, z1.grad[part], rtol=1e-5, atol=1e-7)


def test_without_gathering_each_rank_sees_only_its_own_negatives(tmp_path):
    """Guards the test above: with one process per half the loss differs from the global one."""
    z0_all, z1_all = global_batch()
    halves = [
        NTXentLoss(0.2)(z0_all[p], z1_all[p]).item()
        for p in (slice(0, N_PER_RANK), slice(N_PER_RANK, None))
    ]
    assert abs(sum(halves) / 2 - NTXentLoss(0.2)(z0_all, z1_all).item()) > 1e-3
