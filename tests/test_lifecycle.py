"""The method lifecycle as a plugin author uses it, on one process: real runs of seconds
(a tiny conv net, 32 image files made here, 4 steps per epoch) through ``ssl_core.pretrain``.

Each module records what the core did to it in class attributes: the run happens in this
process, so the test reads them afterwards."""

from __future__ import annotations

import copy
import importlib.metadata
import importlib.util
import inspect
from typing import Any, ClassVar

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
    simple_method,
    small_run,
    tiny_net,
)
from ssl_core import MethodModule, RunInfo, StepOutput
from ssl_core.schedules import cosine_schedule

EPOCHS, STEPS_PER_EPOCH, BATCH = 2, 4, 8  # 32 images, batch 8
TOTAL = EPOCHS * STEPS_PER_EPOCH


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return make_images(tmp_path_factory.mktemp("images"))


def pull(module: nn.Module, views: list[torch.Tensor]) -> torch.Tensor:
    """A loss that moves every parameter of the backbone and the head."""
    a, b = module.head(module.backbone(torch.cat(views))).chunk(2)
    return (a - b.flip(0)).pow(2).mean()


class WithHead(MethodModule):
    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(8, 4)

    def forward(self, views: list[torch.Tensor]) -> torch.Tensor | StepOutput:
        return pull(self, views)


def tensors(module_or_params: Any) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module_or_params]


# -- 1. hook order and arguments ------------------------------------------------------------


class Recorder(WithHead):
    events: ClassVar[list[tuple]] = []
    built_with: ClassVar[list[RunInfo]] = []
    optimizers: ClassVar[list[Any]] = []
    step_losses: ClassVar[dict[int, float]] = {}
    problems: ClassVar[list[str]] = []

    def __init__(self, backbone: nn.Module, run: RunInfo) -> None:
        super().__init__(backbone)
        Recorder.built_with.append(run)
        self.expected: list[torch.Tensor] = []

    def on_train_start(self, run: RunInfo) -> None:
        Recorder.events.append(("on_train_start", run))

    def on_before_forward(self, step: int) -> None:
        Recorder.events.append(("on_before_forward", step))
        self.step = step

    def forward(self, views: list[torch.Tensor]) -> torch.Tensor:
        loss = pull(self, views)
        Recorder.step_losses[self.step] = loss.item()
        return loss

    def on_before_optimizer_step(self, step: int, optimizer: torch.optim.Optimizer) -> None:
        Recorder.events.append(("on_before_optimizer_step", step))
        Recorder.optimizers.append(optimizer)
        params = list(self.parameters())
        if not all(p.grad is not None and p.grad.abs().sum() > 0 for p in params):
            Recorder.problems.append(f"step {step}: a parameter has no gradient yet")
            return
        # Plain SGD (no momentum, no decay): the update the optimiser is about to make.
        lr = optimizer.param_groups[0]["lr"]
        self.expected = [p.detach().add(p.grad, alpha=-lr) for p in params]

    def on_after_optimizer_step(self, step: int) -> None:
        Recorder.events.append(("on_after_optimizer_step", step))
        for param, expected in zip(self.parameters(), self.expected, strict=True):
            if not torch.allclose(param, expected, rtol=1e-6, atol=1e-7):
                Recorder.problems.append(f"step {step}: the parameters are not updated yet")

    def on_epoch_end(self, epoch: int) -> None:
        Recorder.events.append(("on_epoch_end", epoch))


def test_hooks_are_called_in_order_with_the_run_the_step_and_the_optimizer(images, tmp_path):
    Recorder.events, Recorder.built_with, Recorder.optimizers = [], [], []
    Recorder.step_losses, Recorder.problems = {}, []
    method = simple_method("recorder", Recorder)
    with registered(method):
        result = ssl_core.pretrain(
            out=tmp_path / "run", data=images, method="recorder", **small_run()
        )

    run = RunInfo(
        epochs=EPOCHS,
        steps_per_epoch=STEPS_PER_EPOCH,
        global_batch_size=BATCH,
        world_size=1,
        rank=0,
        device="cpu",
        start_step=0,
    )
    assert Recorder.built_with == [run] and run.total_steps == TOTAL == result.steps
    expected: list[tuple] = [("on_train_start", run)]
    for step in range(TOTAL):
        expected += [
            ("on_before_forward", step),
            ("on_before_optimizer_step", step),
            ("on_after_optimizer_step", step),
        ]
        if (step + 1) % STEPS_PER_EPOCH == 0:
            expected.append(("on_epoch_end", step // STEPS_PER_EPOCH))
    assert Recorder.events == expected
    assert Recorder.problems == []  # gradients before the update, parameters updated after

    # One torch optimiser, the run's, over the module's parameters.
    optimizer = Recorder.optimizers[0]
    assert isinstance(optimizer, torch.optim.SGD)
    assert all(o is optimizer for o in Recorder.optimizers)
    saved = load_checkpoint(tmp_path / "run")
    assert optimizer.state_dict()["param_groups"] == saved["optimizer"]["param_groups"]

    # metrics.jsonl's "step" counts steps done: its row s+1 is the hooks' step s.
    rows = read_metrics(tmp_path / "run")
    assert [row["step"] for row in rows] == list(range(1, TOTAL + 1))
    assert [row["loss"] for row in rows] == pytest.approx(
        [Recorder.step_losses[s] for s in range(TOTAL)], rel=1e-6
    )


# -- 2. resume, and 8. the exported network chosen by the module ------------------------------


class Interrupted(Exception):
    """Stands in for a machine failure in the middle of a run."""


class WithTeacher(WithHead):
    """A student and an EMA teacher whose momentum follows a schedule of the step; the
    teacher is exported. Records the runs it is built and started with."""

    stop_at: ClassVar[int | None] = None
    built_with: ClassVar[list[RunInfo]] = []
    started: ClassVar[list[tuple[RunInfo, torch.Tensor]]] = []
    steps: ClassVar[list[int]] = []

    def __init__(self, backbone: nn.Module, run: RunInfo) -> None:
        super().__init__(backbone)
        self.teacher = copy.deepcopy(backbone).requires_grad_(False)
        self.total_steps = run.total_steps
        WithTeacher.built_with.append(run)

    def on_train_start(self, run: RunInfo) -> None:
        WithTeacher.started.append((run, self.teacher.model[0].weight.detach().clone()))

    def on_before_forward(self, step: int) -> None:
        if step == WithTeacher.stop_at:
            raise Interrupted(f"stopped before step {step}")
        WithTeacher.steps.append(step)

    def forward(self, views: list[torch.Tensor]) -> torch.Tensor:
        images = torch.cat(views)
        a, b = self.head(self.backbone(images)).chunk(2)
        with torch.no_grad():
            t0, t1 = self.head(self.teacher(images)).chunk(2)
        return (a - t1).pow(2).mean() + (b - t0).pow(2).mean()

    @torch.no_grad()
    def on_after_optimizer_step(self, step: int) -> None:
        tau = cosine_schedule(step, self.total_steps, 0.5, 1.0)
        for teacher, student in zip(
            self.teacher.parameters(), self.backbone.parameters(), strict=True
        ):
            teacher.mul_(tau).add_(student, alpha=1 - tau)

    def exported_backbone(self) -> nn.Module:
        return self.teacher


def _teacher_run(out, images) -> ssl_core.PretrainResult:
    with registered(simple_method("teacher", WithTeacher)):
        return ssl_core.pretrain(out=out, data=images, method="teacher", **small_run())


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, images):
    """The teacher method trained for 2 epochs without a stop."""
    WithTeacher.stop_at = None
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    _teacher_run(out, images)
    return out


def test_resume_continues_the_lifecycle_bit_for_bit(uninterrupted, images, tmp_path):
    out = tmp_path / "resumed"
    WithTeacher.built_with, WithTeacher.started, WithTeacher.steps = [], [], []
    WithTeacher.stop_at = STEPS_PER_EPOCH  # the first step of epoch 2
    try:
        with pytest.raises(Interrupted):
            _teacher_run(out, images)
        at_stop = load_checkpoint(out)
        assert (at_stop["epoch"], at_stop["step"]) == (1, STEPS_PER_EPOCH)

        WithTeacher.stop_at = None
        WithTeacher.built_with, WithTeacher.started, WithTeacher.steps = [], [], []
        with registered(simple_method("teacher", WithTeacher)):
            result = ssl_core.pretrain(
                out=out, data=images, method="teacher", resume=True, **small_run()
            )
    finally:
        WithTeacher.stop_at = None

    assert result.steps == TOTAL
    # build and on_train_start see where the run resumes; the hooks continue from there.
    (built,) = WithTeacher.built_with
    assert built.start_step == STEPS_PER_EPOCH and built.total_steps == TOTAL
    ((started, teacher_then),) = WithTeacher.started
    assert started == built
    # on_train_start comes after the checkpoint is loaded: it sees the saved weights.
    assert torch.equal(teacher_then, at_stop["model"]["teacher.model.0.weight"])
    assert WithTeacher.steps == list(range(STEPS_PER_EPOCH, TOTAL))

    final, expected = load_checkpoint(out), load_checkpoint(uninterrupted)
    assert final["model"].keys() == expected["model"].keys()
    for key, value in expected["model"].items():
        assert torch.equal(final["model"][key], value), key
    assert final["optimizer"]["param_groups"] == expected["optimizer"]["param_groups"]
    resumed_rows, straight_rows = read_metrics(out), read_metrics(uninterrupted)
    assert [r["step"] for r in resumed_rows] == list(range(1, TOTAL + 1))
    assert [r["loss"] for r in resumed_rows] == [r["loss"] for r in straight_rows]
    for key, value in load_export(uninterrupted).items():
        assert torch.equal(load_export(out)[key], value), key


def test_exported_backbone_chooses_the_network_that_is_exported(uninterrupted):
    """The teacher is exported: the file is its network's state_dict (the library model
    inside the Backbone), not the student's."""
    exported, model = load_export(uninterrupted), load_checkpoint(uninterrupted)["model"]
    teacher = {k.removeprefix("teacher.model."): v for k, v in model.items() if "teacher." in k}
    student = {k.removeprefix("backbone.model."): v for k, v in model.items() if "backbone." in k}
    assert exported.keys() == teacher.keys() == tiny_net().state_dict().keys()
    for key, value in teacher.items():
        assert torch.equal(exported[key], value), key
    assert not torch.equal(exported["0.weight"], student["0.weight"])
    assert not torch.equal(exported["0.weight"], tiny_net().state_dict()["0.weight"])


def test_a_registry_backbone_exports_its_library_model(images, tmp_path):
    with registered(
        simple_method("plain", lambda backbone, run: WithHead(backbone)),
        providers=(TinyProvider(),),
    ):
        ssl_core.pretrain(
            out=tmp_path / "run", data=images, method="plain", **small_run(model="tiny/net")
        )
    exported = load_export(tmp_path / "run")
    model = load_checkpoint(tmp_path / "run")["model"]
    backbone = {k.removeprefix("backbone.model."): v for k, v in model.items() if "backbone." in k}
    assert exported.keys() == backbone.keys() == tiny_net().state_dict().keys()
    for key, value in backbone.items():
        assert torch.equal(exported[key], value), key
    loaded = tiny_net()
    loaded.load_state_dict(exported)  # the library's own model takes the file as it is


# -- 3. a 0.1 plugin, installed ----------------------------------------------------------------


def test_an_installed_0_1_plugin_trains_unchanged(images, tmp_path, installed_plugins, with_site):
    with_site(installed_plugins["fake_method"])
    assert importlib.metadata.distribution("ssl-fake-method").version == "0.3.0"
    method = ssl_core.get_method("fakemethod")
    assert ssl_core.plugins.host.plugins["fake"].distribution == "ssl-fake-method"
    assert list(inspect.signature(method.build).parameters) == ["self", "backbone"]

    result = ssl_core.pretrain(
        out=tmp_path / "run", data=images, method="fakemethod", **small_run()
    )

    assert result.steps == TOTAL
    rows = read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == list(range(1, TOTAL + 1))
    assert set(rows[0]) == {"epoch", "step", "loss", "lr", "images_per_second"}
    model = load_checkpoint(tmp_path / "run")["model"]
    exported = load_export(tmp_path / "run")
    assert exported.keys() == tiny_net().state_dict().keys()
    for key, value in exported.items():
        assert torch.equal(value, model[f"backbone.model.{key}"]), key
    assert not torch.equal(exported["0.weight"], tiny_net().state_dict()["0.weight"])


# -- 4. StepOutput metrics -----------------------------------------------------------------------


class Logging(WithHead):
    """Logs values that are known functions of the step, as floats and as tensors."""

    def on_before_forward(self, step: int) -> None:
        self.step = step

    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        loss = pull(self, views)
        return StepOutput(
            loss,
            {
                "half_step": self.step / 2,
                "step_squared": torch.tensor(self.step**2),
                "loss_again": loss,  # a tensor with a graph: the core detaches it
            },
        )


def test_step_output_metrics_reach_metrics_jsonl_and_tensorboard(images, tmp_path):
    with registered(simple_method("logging", lambda backbone, run: Logging(backbone))):
        ssl_core.pretrain(out=tmp_path / "run", data=images, method="logging", **small_run())

    rows = read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == list(range(1, TOTAL + 1))
    for row in rows:
        assert list(row) == [
            "epoch",
            "step",
            "loss",
            "lr",
            "images_per_second",
            "half_step",
            "step_squared",
            "loss_again",
        ]
        step = row["step"] - 1  # the hooks' step
        assert row["half_step"] == step / 2
        assert row["step_squared"] == step**2
        assert row["loss_again"] == row["loss"]

    if importlib.util.find_spec("tensorboard") is None:
        pytest.skip("tensorboard is not installed (nox -s tests installs it)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    for name in ("loss", "lr", "half_step", "step_squared", "loss_again"):
        scalars = events.Scalars(f"train/{name}")
        assert [s.step for s in scalars] == [r["step"] for r in rows], name
        assert [s.value for s in scalars] == pytest.approx([r[name] for r in rows]), name


def test_a_metric_named_like_a_core_column_is_refused(images, tmp_path):
    class Clashing(WithHead):
        def forward(self, views: list[torch.Tensor]) -> StepOutput:
            loss = pull(self, views)
            return StepOutput(loss, {"loss": loss * 2})

    with (
        registered(simple_method("clashing", lambda backbone, run: Clashing(backbone))),
        pytest.raises(ValueError, match=r"metric named \['loss'\], which the core writes"),
    ):
        ssl_core.pretrain(out=tmp_path / "run", data=images, method="clashing", **small_run())


# -- 6. param_groups -----------------------------------------------------------------------------


class Grouped(WithHead):
    """The head in its own group with its own weight decay and no learning rate; the
    backbone with the run's weight decay."""

    initial_head: ClassVar[list[torch.Tensor]] = []

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__(backbone)
        Grouped.initial_head = tensors(self.head.parameters())

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        return [
            {"params": list(self.head.parameters()), "weight_decay": 0.25, "lr": 0.0},
            {"params": list(self.backbone.parameters()), "lars_exclude": True},
        ]


def test_param_groups_are_the_optimizers_groups(images, tmp_path):
    method = simple_method("grouped", lambda backbone, run: Grouped(backbone))
    optim = {"name": "sgd", "lr": 0.5, "momentum": 0.9, "weight_decay": 0.01}
    with registered(method):
        ssl_core.pretrain(
            out=tmp_path / "run", data=images, method="grouped", **small_run(optim_args=optim)
        )

    saved = load_checkpoint(tmp_path / "run")
    groups, state = saved["optimizer"]["param_groups"], saved["optimizer"]["state"]
    assert [g["weight_decay"] for g in groups] == [0.25, 0.01]
    assert [g["lars_exclude"] for g in groups] == [False, True]
    assert [g["initial_lr"] for g in groups] == [0.0, 0.5 * BATCH / 256]
    # The optimiser's parameters, group by group, are the module's head then backbone.
    model = saved["model"]
    head = [model["head.weight"], model["head.bias"]]
    backbone = [v for k, v in model.items() if k.startswith("backbone.") and "running" not in k]
    backbone = [v for v in backbone if v.is_floating_point()]
    shapes = [[state[i]["momentum_buffer"].shape for i in g["params"]] for g in groups]
    assert shapes == [[p.shape for p in head], [p.shape for p in backbone]]
    # The head's group has no learning rate: it did not move; the backbone did.
    torch.testing.assert_close(head, Grouped.initial_head, rtol=0, atol=0)
    assert not torch.equal(model["backbone.model.0.weight"], tiny_net().state_dict()["0.weight"])


class LeavesOut(WithHead):
    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        return [{"params": [*self.backbone.parameters(), self.head.weight]}]


class ListsTwice(WithHead):
    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        return [
            {"params": list(self.parameters())},
            {"params": [self.head.weight], "weight_decay": 0.0},
        ]


@pytest.mark.parametrize(
    ("module", "message"),
    [
        (LeavesOut, r"LeavesOut.param_groups\(\) leaves out 1 trainable parameter.*head\.bias"),
        (ListsTwice, r"ListsTwice.param_groups\(\) puts parameter 'head\.weight' in two groups"),
    ],
    ids=["left-out", "listed-twice"],
)
def test_param_groups_must_hold_every_trainable_parameter_once(images, tmp_path, module, message):
    method = simple_method("badgroups", lambda backbone, run: module(backbone))
    with registered(method), pytest.raises(ValueError, match=message):
        ssl_core.pretrain(out=tmp_path / "run", data=images, method="badgroups", **small_run())
    assert not (tmp_path / "run" / "metrics.jsonl").read_text()  # refused before any step


# -- 7. on_before_optimizer_step: a weight-decay schedule and a frozen layer ---------------------


class Scheduled(WithHead):
    snapshots: ClassVar[dict[int, dict[str, torch.Tensor]]] = {}
    decays: ClassVar[list[float]] = []

    def __init__(self, backbone: nn.Module, run: RunInfo) -> None:
        super().__init__(backbone)
        self.run = run
        Scheduled.snapshots[-1] = copy.deepcopy(self.state_dict())

    def on_before_optimizer_step(self, step: int, optimizer: torch.optim.Optimizer) -> None:
        decay = cosine_schedule(step, self.run.total_steps, 0.04, 0.4)
        for group in optimizer.param_groups:
            group["weight_decay"] = decay
        Scheduled.decays.append(decay)
        if self.run.epoch_of(step) == 0:  # the head is frozen for the first epoch
            for param in self.head.parameters():
                param.grad = None

    def on_epoch_end(self, epoch: int) -> None:
        Scheduled.snapshots[epoch] = copy.deepcopy(self.state_dict())


def test_before_the_optimizer_step_a_hook_sets_weight_decay_and_freezes_a_layer(images, tmp_path):
    Scheduled.snapshots, Scheduled.decays = {}, []
    optim = {"name": "sgd", "lr": 0.5, "momentum": 0.9, "weight_decay": 0.0}
    with registered(simple_method("scheduled", Scheduled)):
        ssl_core.pretrain(
            out=tmp_path / "run", data=images, method="scheduled", **small_run(optim_args=optim)
        )

    last = cosine_schedule(TOTAL - 1, TOTAL, 0.04, 0.4)
    assert Scheduled.decays[0] == pytest.approx(0.04) and Scheduled.decays[-1] == last
    groups = load_checkpoint(tmp_path / "run")["optimizer"]["param_groups"]
    assert [g["weight_decay"] for g in groups] == [last] * len(groups)

    initial, first, second = (Scheduled.snapshots[i] for i in (-1, 0, 1))
    for key in ("head.weight", "head.bias"):
        assert torch.equal(first[key], initial[key]), key  # frozen in epoch 1
        assert not torch.equal(second[key], first[key]), key  # trained in epoch 2
    assert not torch.equal(first["backbone.model.0.weight"], initial["backbone.model.0.weight"])
