"""The batched augmentation against torchvision's per-image functional ops."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from ssl_core.transforms import batched as B
from ssl_core.transforms.args import (
    ColorJitterArgs,
    GaussianBlurArgs,
    NormalizeArgs,
    RandomFlipArgs,
    RandomResizeArgs,
)

DRAWS = 3000
TOLERANCE = 0.035


def images(n=6, size=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=generator)


def recipe(**overrides) -> B.ViewRecipe:
    values = dict(
        size=(16, 16),
        crop=RandomResizeArgs(),
        flip=RandomFlipArgs(),
        jitter=ColorJitterArgs(),
        gray_prob=0.2,
        blur=GaussianBlurArgs(),
        normalize=NormalizeArgs(),
    )
    values.update(overrides)
    return B.ViewRecipe(**values)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (B.adjust_brightness, TF.adjust_brightness),
        (B.adjust_contrast, TF.adjust_contrast),
        (B.adjust_saturation, TF.adjust_saturation),
    ],
)
def test_colour_ops_match_torchvision_per_image(ours, theirs):
    x = images()
    factors = torch.tensor([0.2, 0.5, 0.9, 1.0, 1.4, 1.8])
    got = ours(x.clone(), factors)
    for i, factor in enumerate(factors.tolist()):
        torch.testing.assert_close(got[i], theirs(x[i], factor), atol=1e-6, rtol=1e-5)


def test_hue_matches_torchvision_per_image():
    x = images()
    x[0] = 0.5  # gray: no hue
    shifts = torch.tensor([0.3, -0.5, -0.2, 0.0, 0.1, 0.5])
    got = B.adjust_hue(x.clone(), shifts)
    for i, shift in enumerate(shifts.tolist()):
        torch.testing.assert_close(got[i], TF.adjust_hue(x[i], shift), atol=1e-5, rtol=1e-5)


def test_grayscale_matches_torchvision():
    x = images()
    torch.testing.assert_close(
        B.grayscale(x).expand(-1, 3, -1, -1), TF.rgb_to_grayscale(x, num_output_channels=3)
    )


def test_blur_matches_torchvision_per_image():
    x = images(size=20)
    sigmas = torch.tensor([0.1, 0.5, 1.0, 1.5, 2.0, 0.7])
    got = B.gaussian_blur(x, sigmas, kernel_size=5)
    for i, sigma in enumerate(sigmas.tolist()):
        expected = TF.gaussian_blur(x[i], kernel_size=[5, 5], sigma=[sigma, sigma])
        torch.testing.assert_close(got[i], expected, atol=1e-6, rtol=1e-5)


def test_each_image_gets_its_own_jitter_order():
    x = images(n=4)
    # jitter on; factors; then two different orders; no gray, no blur
    params = torch.tensor(
        [
            [1, 1.5, 0.5, 1.7, 0.2, 0, 1, 2, 3, 0, 0, 1.0],
            [1, 1.5, 0.5, 1.7, 0.2, 3, 2, 1, 0, 0, 0, 1.0],
            [0, 1.5, 0.5, 1.7, 0.2, 0, 1, 2, 3, 0, 0, 1.0],  # jitter off
            [1, 1.0, 1.0, 0.0, 0.0, 2, 0, 3, 1, 1, 1, 1.0],  # desaturate, then gray and blur
        ]
    )
    pixels = (x * 255).round().to(torch.uint8)
    normalize = NormalizeArgs(mean=(0, 0, 0), std=(1, 1, 1))
    blur = GaussianBlurArgs(kernel_size=5)
    got = B.finish_views(B.ViewBatch(pixels, params), recipe(normalize=normalize, blur=blur))
    steps = {
        0: lambda img, p: TF.adjust_brightness(img, p[1]),
        1: lambda img, p: TF.adjust_contrast(img, p[2]),
        2: lambda img, p: TF.adjust_saturation(img, p[3]),
        3: lambda img, p: TF.adjust_hue(img, p[4]),
    }
    for i in range(4):
        p = params[i].tolist()
        img = pixels[i].float() / 255
        if p[0]:
            for op in p[5:9]:
                img = steps[int(op)](img, p)
        if p[9]:
            img = TF.rgb_to_grayscale(img, num_output_channels=3)
        if p[10]:
            img = TF.gaussian_blur(img, kernel_size=[5, 5], sigma=[p[11], p[11]])
        torch.testing.assert_close(got[i], img, atol=1e-5, rtol=1e-5)


def test_drawn_probabilities_match_the_settings():
    r = recipe(jitter=ColorJitterArgs(prob=0.8), gray_prob=0.2, blur=GaussianBlurArgs(prob=0.5))
    generator = torch.Generator().manual_seed(0)
    params = torch.tensor([B.sample_colour(r, generator) for _ in range(DRAWS)])
    assert params[:, 0].mean().item() == pytest.approx(0.8, abs=TOLERANCE)
    assert params[:, 9].mean().item() == pytest.approx(0.2, abs=TOLERANCE)
    assert params[:, 10].mean().item() == pytest.approx(0.5, abs=TOLERANCE)
    assert params[:, 1].min() >= 0.2 and params[:, 1].max() <= 1.8  # brightness 0.8
    assert params[:, 4].abs().max() <= 0.2  # hue 0.2
    assert params[:, 11].min() >= 0.1 and params[:, 11].max() <= 2.0  # sigma range
    orders = params[:, 5:9]
    assert (orders.sort(dim=1).values == torch.arange(4.0)).all()  # permutations
    assert len({tuple(o) for o in orders.tolist()}) == 24  # every order occurs


def test_crop_and_flip_draws():
    r = recipe(
        size=(8, 8),
        flip=RandomFlipArgs(horizontal_prob=0.5),
        crop=RandomResizeArgs(min_scale=0.25, max_scale=0.5),
    )
    generator = torch.Generator().manual_seed(1)
    areas = []
    for _ in range(500):
        top, left, h, w = B.sample_crop(40, 60, r.crop, generator)
        assert top >= 0 and top + h <= 40 and left >= 0 and left + w <= 60
        areas.append(h * w / (40 * 60))
    assert min(areas) >= 0.22 and max(areas) <= 0.53
    image = torch.arange(3 * 4 * 4, dtype=torch.uint8).view(3, 4, 4)
    full = recipe(
        size=(4, 4), crop=RandomResizeArgs(min_scale=1, max_scale=1, min_ratio=1, max_ratio=1)
    )
    flipped = sum(
        torch.equal(B.crop_view(image, full, generator), image.flip(-1)) for _ in range(DRAWS)
    )
    assert flipped / DRAWS == pytest.approx(0.5, abs=TOLERANCE)


def test_an_images_views_do_not_depend_on_its_batch():
    """What makes a 2-process step equal the 1-process step: views depend on the seed only."""
    pipeline = B.BatchedViews([recipe(), recipe()])
    generator = torch.Generator().manual_seed(2)
    items = [
        (1000 + i, torch.randint(0, 256, (3, 24, 24), dtype=torch.uint8, generator=generator))
        for i in range(8)
    ]
    whole = pipeline.finish(pipeline.prepare(items))
    halves = [pipeline.finish(pipeline.prepare(part)) for part in (items[:3], items[3:])]
    for view in range(2):
        joined = torch.cat([halves[0][view], halves[1][view]])
        torch.testing.assert_close(joined, whole[view], atol=1e-6, rtol=1e-6)
    assert not torch.equal(whole[0], whole[1])  # the two views differ


def test_colour_strength_scales_every_factor():
    r = recipe(jitter=ColorJitterArgs(strength=0.5))
    generator = torch.Generator().manual_seed(3)
    params = torch.tensor([B.sample_colour(r, generator) for _ in range(DRAWS)])
    for column in (1, 2, 3):  # brightness, contrast, saturation 0.8 × 0.5 = 0.4
        assert params[:, column].min() >= 0.6 and params[:, column].max() <= 1.4
        assert params[:, column].min() < 0.62 and params[:, column].max() > 1.38
    assert params[:, 4].abs().max() <= 0.1 and params[:, 4].abs().max() > 0.098


def test_finishing_on_the_device_equals_finishing_in_the_worker():
    """The GPU path ships uint8 crops and parameters and finishes after the copy."""
    from ssl_core.data.dataset import BatchCollate

    pipeline = B.BatchedViews([recipe(), recipe()])
    items = [(7 + i, torch.randint(0, 256, (3, 20, 20), dtype=torch.uint8)) for i in range(5)]
    in_worker = BatchCollate(pipeline, finish=True)(items)
    shipped = BatchCollate(pipeline, finish=False)(items)
    assert all(v.pixels.dtype == torch.uint8 for v in shipped)
    on_device = pipeline.finish([v.to(torch.device("cpu")) for v in shipped])
    for a, b in zip(in_worker, on_device, strict=True):
        torch.testing.assert_close(a, b)
