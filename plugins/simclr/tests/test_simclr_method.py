"""The SimCLR method as the engine builds it: backbone, head and loss in one module; and
the plugin author's kit's checks of the plugin as a whole."""

from __future__ import annotations

import pytest
import torch

import ssl_core
from ssl_core.testing import (
    check_export_loads,
    check_one_vs_two_processes,
    check_plugin,
    train_steps,
)
from ssl_simclr import NTXentLoss, SimCLRArgs

SMALL = {"hidden_dim": 64, "output_dim": 16}


def test_simclr_defaults_for_the_engine():
    simclr = ssl_core.get_method("simclr")
    assert simclr.default_epochs == 100
    opt = simclr.default_optimizer
    assert (opt.name, opt.lr, opt.lr_reference_batch, opt.momentum, opt.weight_decay) == (
        "sgd",
        0.3,
        256,
        0.9,
        1e-4,
    )
    assert simclr.transform == "simclr"


def test_model_runs_both_views_in_one_forward_pass():
    torch.manual_seed(0)
    backbone = ssl_core.build_backbone("torchvision/resnet18")
    model = ssl_core.get_method("simclr")(SimCLRArgs(hidden_dim=64, output_dim=16)).build(backbone)
    assert model.backbone is backbone
    calls = []
    backbone.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape))
    views = [torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)]
    loss = model(views)
    assert calls == [torch.Size([8, 3, 32, 32])]
    loss.backward()
    assert torch.isfinite(loss)
    assert backbone.model.conv1.weight.grad is not None

    # The value is NT-Xent of the head's projections of the two halves.
    model.eval()
    with torch.no_grad():
        z = model.head(backbone(torch.cat(views)))
        expected = NTXentLoss(0.1)(z[:4], z[4:])
        assert model(views).item() == pytest.approx(expected.item(), rel=1e-6)


def test_model_rejects_other_view_counts():
    backbone = ssl_core.build_backbone("torchvision/resnet18")
    model = ssl_core.get_method("simclr")(SimCLRArgs()).build(backbone)
    with pytest.raises(ValueError, match="two views"):
        model([torch.randn(2, 3, 32, 32)])


def test_passes_the_plugin_checks():
    check_plugin("simclr")


def test_trains_and_its_export_loads_into_torchvision(ssl_image_folder, tmp_path):
    result = train_steps("simclr", ssl_image_folder(), out=tmp_path / "run", method_args=SMALL)
    features = check_export_loads(result)
    assert features.shape == (2, 512)


def test_one_step_on_two_processes_equals_one_process(ssl_image_folder, tmp_path):
    """Gathered negatives and global BatchNorm: two processes of 8 images make the step of
    one process of 16."""
    check_one_vs_two_processes("simclr", ssl_image_folder(count=16), tmp_path, method_args=SMALL)
