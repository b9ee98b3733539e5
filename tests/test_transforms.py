"""The core augmentation ops and SimCLR's two-view transform on uint8 tensors."""

from __future__ import annotations

import pytest
import torch

from ssl_core.transforms import ops
from ssl_core.transforms.args import (
    ColorJitterArgs,
    GaussianBlurArgs,
    NormalizeArgs,
    RandomFlipArgs,
    RandomResizeArgs,
)
from ssl_simclr import SimCLRTransform, SimCLRTransformArgs

DRAWS = 2000
TOLERANCE = 0.04  # > 4 standard deviations of a proportion at p=0.5 over 2000 draws


def textured(size: int = 12, channels: int = 3, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (channels, size, size), dtype=torch.uint8, generator=generator)


def fraction(op, image, changed) -> float:
    torch.manual_seed(0)
    return sum(bool(changed(op(image), image)) for _ in range(DRAWS)) / DRAWS


def differs(a, b):
    return not torch.equal(a, b)


def test_simclr_views_shape_dtype_and_normalisation():
    views = SimCLRTransform(SimCLRTransformArgs(image_size=32)).build()(textured(40))
    assert len(views) == 2
    for view in views:
        assert view.shape == (3, 32, 32) and view.dtype == torch.float32
        assert view.min() > -3.0 and view.max() < 3.0  # ImageNet-normalised range


def test_views_are_drawn_independently():
    transform = SimCLRTransform(SimCLRTransformArgs(image_size=16)).build()
    torch.manual_seed(0)
    image = textured(24)
    pairs = [transform(image) for _ in range(20)]
    assert all(not torch.equal(a, b) for a, b in pairs)


def test_same_seed_same_views():
    transform = SimCLRTransform(SimCLRTransformArgs(image_size=16)).build()
    image = textured(24)
    torch.manual_seed(123)
    first = transform(image)
    torch.manual_seed(123)
    second = transform(image)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


@pytest.mark.parametrize("channels", [1, 2, 4])
def test_grayscale_and_alpha_inputs_become_rgb(channels):
    image = textured(20, channels=channels)
    rgb = ops.to_rgb(image)
    assert rgb.shape == (3, 20, 20) and rgb.dtype == torch.uint8
    if channels in (1, 2):
        assert torch.equal(rgb[0], image[0]) and torch.equal(rgb[1], rgb[2])
    else:
        assert torch.equal(rgb, image[:3])
    views = SimCLRTransform(SimCLRTransformArgs(image_size=8)).build()(image)
    assert all(v.shape == (3, 8, 8) for v in views)
    assert ops.to_rgb(textured(5)[0]).shape == (3, 5, 5)  # a bare H×W image too


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_horizontal_flip_probability(p):
    image = textured()
    op = ops.random_flip(RandomFlipArgs(horizontal_prob=p, vertical_prob=0.0))
    assert fraction(op, image, lambda out, img: torch.equal(out, img.flip(-1))) == pytest.approx(
        p, abs=TOLERANCE
    )


def test_vertical_flip_probability():
    image = textured()
    op = ops.random_flip(RandomFlipArgs(horizontal_prob=0.0, vertical_prob=0.3))
    assert fraction(op, image, lambda out, img: torch.equal(out, img.flip(-2))) == pytest.approx(
        0.3, abs=TOLERANCE
    )


def test_color_jitter_probability():
    op = ops.color_jitter(ColorJitterArgs(prob=0.8))
    assert fraction(op, textured(), differs) == pytest.approx(0.8, abs=TOLERANCE)
    assert fraction(ops.color_jitter(ColorJitterArgs(prob=0.0)), textured(), differs) == 0.0


def test_color_jitter_strength_scales_every_factor():
    op = ops.color_jitter(ColorJitterArgs(strength=0.5)).transforms[0]
    assert op.brightness == pytest.approx((0.6, 1.4))
    assert op.contrast == pytest.approx((0.6, 1.4))
    assert op.saturation == pytest.approx((0.6, 1.4))
    assert op.hue == pytest.approx((-0.1, 0.1))


def test_grayscale_probability():
    def gray(out, _):
        return torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])

    assert fraction(ops.random_grayscale(0.2), textured(), gray) == pytest.approx(
        0.2, abs=TOLERANCE
    )


def test_blur_probability_and_kernel():
    # sigma >= 1 so that every applied blur changes a uint8 pixel (0.1 may round to a no-op)
    op = ops.gaussian_blur(GaussianBlurArgs(prob=0.5, sigmas=(1.0, 2.0)), (32, 32))
    assert fraction(op, textured(16), differs) == pytest.approx(0.5, abs=TOLERANCE)
    assert ops.blur_kernel_size((224, 224)) == 23
    assert ops.blur_kernel_size((32, 32)) == 3


def test_random_resized_crop_area_range():
    op = ops.random_resized_crop((8, 8), RandomResizeArgs(min_scale=0.5, max_scale=0.5))
    torch.manual_seed(0)
    for _ in range(50):
        params = op.make_params([textured(100)])
        area = params["height"] * params["width"] / 100**2
        assert area == pytest.approx(0.5, abs=0.03)
    assert op(textured(100)).shape == (3, 8, 8)


def test_normalize_matches_definition():
    image = textured(4)
    out = ops.to_float_normalized(NormalizeArgs())(image)
    mean = torch.tensor(NormalizeArgs().mean).view(3, 1, 1)
    std = torch.tensor(NormalizeArgs().std).view(3, 1, 1)
    torch.testing.assert_close(
        out, (image.double() / 255 - mean.double()).div(std.double()).float()
    )
