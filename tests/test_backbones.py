"""Backbones from torchvision, timm and a user's module: features, size, export."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import ssl_core
from ssl_core.backbones.backbone import from_module


@pytest.mark.parametrize(
    ("name", "kwargs", "dim", "missing"),
    [
        ("resnet18", {}, 512, {"fc.weight", "fc.bias"}),
        ("convnext_tiny", {}, 768, {"classifier.2.weight", "classifier.2.bias"}),
        ("efficientnet_b0", {}, 1280, {"classifier.1.weight", "classifier.1.bias"}),
        ("mobilenet_v3_small", {}, 1024, {"classifier.3.weight", "classifier.3.bias"}),
        ("regnet_x_400mf", {}, 400, {"fc.weight", "fc.bias"}),
        ("vit_b_32", {"image_size": 64}, 768, {"heads.head.weight", "heads.head.bias"}),
    ],
)
def test_torchvision_backbone(name, kwargs, dim, missing):
    torch.manual_seed(0)
    backbone = ssl_core.build_backbone(f"torchvision/{name}", **kwargs)
    assert backbone.feature_dim == dim
    backbone.eval()
    with torch.no_grad():
        features = backbone(torch.randn(2, 3, 64, 64))
    assert features.shape == (2, dim)
    # The export is the library's own format: the constructor takes it with only the head missing.
    reference = torchvision.models.get_model(name, weights=None, **kwargs)
    result = reference.load_state_dict(backbone.original_model().state_dict(), strict=False)
    assert set(result.missing_keys) == missing
    assert result.unexpected_keys == []


def test_required_torchvision_families_are_listed():
    names = ssl_core.list_models("torchvision/")
    for family in ("resnet", "convnext", "efficientnet", "mobilenet", "regnet", "vit"):
        assert any(n.startswith(f"torchvision/{family}") for n in names), family


def test_timm_backbone_has_no_classifier():
    backbone = ssl_core.build_backbone("timm/resnet18")
    assert backbone.feature_dim == 512
    backbone.eval()
    with torch.no_grad():
        assert backbone(torch.randn(2, 3, 32, 32)).shape == (2, 512)
    import timm

    reference = timm.create_model("resnet18", pretrained=False, num_classes=0)
    reference.load_state_dict(backbone.original_model().state_dict())  # strict: same model


def test_custom_module_feature_dim_is_probed():
    module = nn.Sequential(nn.Conv2d(3, 7, 3), nn.ReLU())  # outputs N×7×H×W
    backbone = from_module(module)
    assert backbone.feature_dim == 7
    assert backbone(torch.randn(3, 3, 16, 16)).shape == (3, 7)
    assert backbone.original_model() is module
    assert module.training  # probing does not leave it in eval mode


def test_custom_module_declared_feature_dim_is_used():
    module = nn.Sequential(nn.Flatten(), nn.LazyLinear(5))
    module.feature_dim = 5
    assert from_module(module).feature_dim == 5
