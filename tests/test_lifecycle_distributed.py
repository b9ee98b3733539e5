"""The method lifecycle on two real processes (``devices=2``, gloo on the CPU).

The methods are module-level classes: the spawned processes unpickle them by reference.
Nothing but the files a run writes comes back from those processes, so what a test checks
there is logged as a metric (the mean over both processes) or read from the checkpoint."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import ssl_core
from lifecycle_support import (
    TinyProvider,
    load_checkpoint,
    load_export,
    make_images,
    read_metrics,
    registered,
    small_run,
    tiny_net,
)
from ssl_core import Method, MethodModule, RankFailed, RunInfo, StepOutput, StrictArgs, distributed
from ssl_core.train.global_batchnorm import GlobalBatchNorm, convert_global_batchnorm

TOTAL = 8  # 2 epochs of 4 steps: 32 images, global batch 8 (4 per process)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return make_images(tmp_path_factory.mktemp("images"))


# -- 5. logged values are means over the processes; rank-local buffers ----------------------


class RankValues(MethodModule):
    """Logs the rank, a loss offset by 10 × rank, and a buffer set to the rank at the start."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.register_buffer("mark", torch.zeros(()))
        self.world = 0

    def on_train_start(self, run: RunInfo) -> None:
        self.mark.fill_(float(run.rank))
        self.world = run.world_size

    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        a, b = self.backbone(torch.cat(views)).chunk(2)
        pull = (a - b).pow(2).mean()
        rank = distributed.rank()
        return StepOutput(
            pull + 10.0 * rank,
            {
                "pull": pull,
                "rank": float(rank),
                "rank_tensor": torch.tensor(rank),
                "mark": self.mark.clone(),
                "world_size": float(self.world),
            },
        )


class RankLocalBuffers(Method):
    name = "ranklocal"
    args_model = StrictArgs
    transform = "simclr"
    broadcast_buffers = False

    def build(self, backbone: nn.Module, run: RunInfo) -> nn.Module:
        return RankValues(backbone)


class BroadcastBuffers(RankLocalBuffers):
    name = "broadcast"
    broadcast_buffers = True  # the default


@pytest.fixture(scope="module")
def rank_local_run(tmp_path_factory, images):
    """Two processes, rank-local buffers, and a backbone from a provider registered in
    this process only (``tiny/net``)."""
    out = tmp_path_factory.mktemp("ranklocal") / "run"
    with registered(RankLocalBuffers, providers=(TinyProvider(),)):
        result = ssl_core.pretrain(
            out=out, data=images, method="ranklocal", **small_run(model="tiny/net", devices=2)
        )
    assert result.steps == TOTAL
    return out


def test_logged_loss_and_metrics_are_means_over_processes(rank_local_run):
    rows = read_metrics(rank_local_run)
    assert [r["step"] for r in rows] == list(range(1, TOTAL + 1))
    for row in rows:
        assert row["rank"] == row["rank_tensor"] == 0.5  # (0 + 1) / 2
        assert row["world_size"] == 2.0
        # Each process's loss is its pull + 10·rank: the mean is the mean pull + 5.
        assert row["loss"] == pytest.approx(row["pull"] + 5.0, abs=1e-5)
        assert row["mark"] == 0.5  # each process kept its own buffer


def test_buffers_are_rank_0s_unless_the_method_keeps_them_local(images, tmp_path):
    with registered(BroadcastBuffers):
        ssl_core.pretrain(
            out=tmp_path / "run", data=images, method="broadcast", **small_run(devices=2)
        )
    rows = read_metrics(tmp_path / "run")
    assert len(rows) == TOTAL
    assert all(row["mark"] == 0.0 for row in rows)  # DDP copied rank 0's before each forward
    assert all(row["rank"] == 0.5 for row in rows)


# -- 9. a provider registered in this process serves the spawned processes -------------------


def test_an_in_process_backbone_provider_trains_on_two_processes(rank_local_run):
    exported = load_export(rank_local_run)
    model = load_checkpoint(rank_local_run)["model"]
    assert exported.keys() == tiny_net().state_dict().keys()  # the provider's network
    for key, value in exported.items():
        assert torch.equal(value, model[f"backbone.model.{key}"]), key
    assert not torch.equal(exported["0.weight"], tiny_net().state_dict()["0.weight"])
    assert "tiny/net" in (rank_local_run / "train.log").read_text()


# -- 10. global BatchNorm with a frozen BatchNorm inside the module ----------------------------


class FrozenTarget(MethodModule):
    """A student and a frozen copy (a momentum target that never moves) with BatchNorm."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(8, 8)
        self.target = copy.deepcopy(backbone).requires_grad_(False)

    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        images = torch.cat(views)
        a, b = self.head(self.backbone(images)).chunk(2)
        with torch.no_grad():
            ta, tb = self.target(images).chunk(2)
        norms = [self.backbone.model[1], self.target.model[1]]
        return StepOutput(
            (a - tb).pow(2).mean() + (b - ta).pow(2).mean(),
            {
                "global_norms": float(all(type(n).__name__ == "GlobalBatchNorm" for n in norms)),
                "target_frozen": float(not any(p.requires_grad for p in self.target.parameters())),
            },
        )


class FrozenTargetMethod(Method):
    name = "frozentarget"
    args_model = StrictArgs
    transform = "simclr"
    sync_batchnorm = True

    def build(self, backbone: nn.Module, run: RunInfo) -> nn.Module:
        return FrozenTarget(backbone)


def test_global_batchnorm_keeps_a_frozen_submodule_frozen_on_two_processes(images, tmp_path):
    with registered(FrozenTargetMethod):
        result = ssl_core.pretrain(
            out=tmp_path / "run", data=images, method="frozentarget", **small_run(devices=2)
        )
    assert result.steps == TOTAL
    rows = read_metrics(tmp_path / "run")
    assert all(r["global_norms"] == 1.0 and r["target_frozen"] == 1.0 for r in rows)
    model, initial = load_checkpoint(tmp_path / "run")["model"], tiny_net().state_dict()
    for key in ("0.weight", "0.bias", "1.weight", "1.bias"):
        assert torch.equal(model[f"target.model.{key}"], initial[key]), key
        assert not torch.equal(model[f"backbone.model.{key}"], initial[key]), key


def test_convert_global_batchnorm_keeps_the_very_parameters_and_buffers():
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.BatchNorm1d(4 * 6 * 6)
    )
    net[3].requires_grad_(False)
    net[1].eval()
    params = {name: p for name, p in net.named_parameters()}
    buffers = {name: b for name, b in net.named_buffers()}
    flags = {name: p.requires_grad for name, p in params.items()}
    images = torch.randn(5, 3, 8, 8)
    expected = net(images)

    converted = convert_global_batchnorm(net)

    assert isinstance(converted[1], GlobalBatchNorm) and isinstance(converted[3], GlobalBatchNorm)
    assert isinstance(converted[0], nn.Conv2d)
    assert dict(converted.named_parameters()).keys() == params.keys()
    for name, param in converted.named_parameters():
        assert param is params[name], name
        assert param.requires_grad == flags[name], name
    assert dict(converted.named_buffers()).keys() == buffers.keys()
    for name, buffer in converted.named_buffers():
        assert buffer is buffers[name], name
    assert (converted[1].training, converted[3].training) == (False, True)
    # On one process it normalises as BatchNorm does (and its optimiser still holds them).
    torch.testing.assert_close(converted(images), expected)


# -- 11. a process that fails after the first step ----------------------------------------------


class FailsAtStep2(MethodModule):
    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def on_before_forward(self, step: int) -> None:
        if step == 2 and distributed.rank() == 1:
            raise RuntimeError("step 2 failed on rank 1\nsecond line\nthird line\nfourth line")

    def forward(self, views: list[torch.Tensor]) -> torch.Tensor:
        a, b = self.backbone(torch.cat(views)).chunk(2)
        return (a - b).pow(2).mean()


class FailsAtStep2Method(Method):
    name = "failsatstep2"
    args_model = StrictArgs
    transform = "simclr"

    def build(self, backbone: nn.Module, run: RunInfo) -> nn.Module:
        return FailsAtStep2(backbone)


def test_a_rank_failing_mid_run_is_reported_with_its_type_and_traceback(images, tmp_path):
    out = tmp_path / "run"
    with registered(FailsAtStep2Method), pytest.raises(RankFailed) as failed:
        ssl_core.pretrain(out=out, data=images, method="failsatstep2", **small_run(devices=2))
    message = str(failed.value)
    assert message.startswith(
        "Training process 1 of 2 failed: RuntimeError: step 2 failed on rank 1 second line "
        "third line …"
    )
    assert "fourth line" not in message  # the first lines only
    assert f"Its full traceback is in {out / 'train.log'}." in message
    log = (out / "train.log").read_text()
    assert "Process 1 failed:\nTraceback (most recent call last)" in log
    assert 'raise RuntimeError("step 2 failed on rank 1' in log and "fourth line" in log
