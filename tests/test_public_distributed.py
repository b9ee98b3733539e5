"""ssl_core.distributed, the helpers a method uses on several processes: two real gloo
processes against the same computation on one process in float64, and the identity on one
process."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ssl_core import distributed

WORLD = 2
ROWS, DIM = 3, 4


def inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every process's data, stacked: features (WORLD·ROWS × DIM), per-process statistics
    (WORLD × DIM) and per-process loss weights (WORLD × DIM)."""
    generator = torch.Generator().manual_seed(11)
    features = torch.randn(WORLD * ROWS, DIM, generator=generator, dtype=torch.float64)
    stats = torch.randn(WORLD, DIM, generator=generator, dtype=torch.float64)
    weights = torch.randn(WORLD, DIM, generator=generator, dtype=torch.float64)
    return features, stats, weights


def gather_loss(everything: torch.Tensor, rank: int) -> torch.Tensor:
    """Process ``rank``'s loss over the whole gathered batch: its own rows against all."""
    own = everything[rank * ROWS : (rank + 1) * ROWS]
    return (own @ everything.T).sigmoid().sum() + everything.pow(3).mean() * (rank + 1)


def _rank_main(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        features, stats, weights = inputs()
        mine = features[rank * ROWS : (rank + 1) * ROWS].clone().requires_grad_(True)
        gathered = distributed.gather_with_gradient(mine)
        gather_loss(gathered, rank).backward()

        stat = stats[rank].clone().requires_grad_(True)
        total = distributed.all_reduce_sum_with_gradient(stat)
        (total * weights[rank]).sum().backward()
        stat_after = stat.detach().clone()

        mean = distributed.all_reduce_mean(stats[rank])
        mean_of_ints = distributed.all_reduce_mean(torch.tensor([rank, 3 * rank]))
        torch.save(
            {
                "is_distributed": distributed.is_distributed(),
                "rank": distributed.rank(),
                "world_size": distributed.world_size(),
                "gathered": gathered.detach(),
                "gather_grad": mine.grad,
                "sum": total.detach(),
                "sum_is_new": total.data_ptr() != stat.data_ptr(),
                "sum_grad": stat.grad,
                "input_kept": torch.equal(stat_after, stats[rank]),
                "mean": mean,
                "mean_requires_grad": mean.requires_grad,
                "mean_of_ints": mean_of_ints,
            },
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


def test_helpers_on_two_processes_equal_the_whole_batch_on_one(tmp_path):
    mp.spawn(_rank_main, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]

    features, stats, weights = inputs()
    # gather_with_gradient: the global loss (the sum of every process's loss) on one process.
    whole = features.clone().requires_grad_(True)
    sum(gather_loss(whole, r) for r in range(WORLD)).backward()
    # all_reduce_sum_with_gradient: the sum of the statistics, weighted differently by each.
    each = stats.clone().requires_grad_(True)
    sum((each.sum(0) * weights[r]).sum() for r in range(WORLD)).backward()

    for rank, result in enumerate(results):
        part = slice(rank * ROWS, (rank + 1) * ROWS)
        assert (result["is_distributed"], result["rank"], result["world_size"]) == (True, rank, 2)
        # Every process's rows, in rank order.
        assert torch.equal(result["gathered"], features)
        # The backward sums the gradients of all processes' losses on this process's rows.
        torch.testing.assert_close(result["gather_grad"], whole.grad[part], rtol=1e-12, atol=0)

        torch.testing.assert_close(result["sum"], stats.sum(0), rtol=1e-12, atol=0)
        assert result["sum_is_new"] and result["input_kept"]
        torch.testing.assert_close(result["sum_grad"], each.grad[rank], rtol=1e-12, atol=0)
        torch.testing.assert_close(result["sum_grad"], weights.sum(0), rtol=1e-12, atol=0)

        torch.testing.assert_close(result["mean"], stats.mean(0), rtol=1e-12, atol=0)
        assert not result["mean_requires_grad"]
        assert result["mean_of_ints"].dtype == torch.float32
        assert result["mean_of_ints"].tolist() == [0.5, 1.5]


def test_helpers_are_the_identity_on_one_process():
    assert not distributed.is_distributed()
    assert (distributed.rank(), distributed.world_size()) == (0, 1)
    features, stats, _ = inputs()

    x = features.clone().requires_grad_(True)
    gathered = distributed.gather_with_gradient(x)
    assert torch.equal(gathered, features)
    gather_loss(gathered, 0).backward()
    reference = features.clone().requires_grad_(True)
    gather_loss(reference, 0).backward()
    assert torch.equal(x.grad, reference.grad)

    y = stats.clone().requires_grad_(True)
    total = distributed.all_reduce_sum_with_gradient(y)
    assert torch.equal(total, stats)
    (total * 3).sum().backward()
    assert torch.equal(y.grad, torch.full_like(stats, 3.0))

    mean = distributed.all_reduce_mean(y)
    assert torch.equal(mean, stats) and not mean.requires_grad
    mean.add_(1)  # a new tensor: the input is untouched
    assert torch.equal(y.detach(), stats)
