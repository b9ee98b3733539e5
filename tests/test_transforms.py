"""SimCLR's two-view transform as a user calls it, image by image, on uint8 tensors."""

from __future__ import annotations

import pytest
import torch

from ssl_core.transforms import PerImageViews, Transform, functional
from ssl_simclr import SimCLRTransform, SimCLRTransformArgs


def textured(size: int = 12, channels: int = 3, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (channels, size, size), dtype=torch.uint8, generator=generator)


def test_simclr_views_shape_dtype_and_normalisation():
    transform = SimCLRTransform(SimCLRTransformArgs(image_size=32)).build()
    assert isinstance(transform, PerImageViews)  # the batched form, an image at a time
    views = transform(textured(40))
    assert len(views) == 2
    for view in views:
        assert view.shape == (3, 32, 32) and view.dtype == torch.float32
        assert view.min() > -2.2 and view.max() < 2.7  # ImageNet-normalised [0, 1] pixels


def test_views_are_drawn_independently():
    transform = SimCLRTransform(SimCLRTransformArgs(image_size=16)).build()
    torch.manual_seed(0)
    image = textured(24)
    pairs = [transform(image) for _ in range(20)]
    assert all(not torch.equal(a, b) for a, b in pairs)
    assert not torch.equal(pairs[0][0], pairs[1][0])  # and calls differ from each other


def test_same_seed_same_views():
    transform = SimCLRTransform(SimCLRTransformArgs(image_size=16)).build()
    image = textured(24)
    torch.manual_seed(123)
    first = transform(image)
    torch.manual_seed(123)
    second = transform(image)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_no_augmentation_is_crop_resize_and_normalise_only():
    args = SimCLRTransformArgs(
        image_size=8,
        random_resize={"min_scale": 1.0, "max_scale": 1.0, "min_ratio": 1.0, "max_ratio": 1.0},
        random_flip={"horizontal_prob": 0.0},
        color_jitter={"prob": 0.0},
        random_gray_scale=0.0,
        gaussian_blur={"prob": 0.0},
    )
    image = textured(8)
    mean = torch.tensor(args.normalize.mean).view(3, 1, 1)
    std = torch.tensor(args.normalize.std).view(3, 1, 1)
    for view in SimCLRTransform(args).build()(image):
        torch.testing.assert_close(view, (image.float() / 255 - mean) / std)


@pytest.mark.parametrize("channels", [1, 2, 4])
def test_grayscale_and_alpha_inputs_become_rgb(channels):
    image = textured(20, channels=channels)
    rgb = functional.to_rgb(image)
    assert rgb.shape == (3, 20, 20) and rgb.dtype == torch.uint8
    if channels in (1, 2):
        assert torch.equal(rgb[0], image[0]) and torch.equal(rgb[1], rgb[2])
    else:
        assert torch.equal(rgb, image[:3])
    views = SimCLRTransform(SimCLRTransformArgs(image_size=8)).build()(image)
    assert all(v.shape == (3, 8, 8) for v in views)
    assert functional.to_rgb(textured(5)[0]).shape == (3, 5, 5)  # a bare H×W image too


def test_blur_kernel_is_a_tenth_of_the_image():
    assert functional.blur_kernel_size((224, 224)) == 23
    assert functional.blur_kernel_size((32, 32)) == 3


def test_a_transform_without_a_batched_form_must_build_its_own():
    class Nothing(Transform):
        name = "nothing"

    with pytest.raises(NotImplementedError, match="neither build"):
        Nothing(SimCLRTransformArgs()).build()
