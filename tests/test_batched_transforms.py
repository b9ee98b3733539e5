"""The batched augmentation against torchvision's per-image functional ops."""

from __future__ import annotations

import random

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


@pytest.mark.parametrize("masked", [False, True], ids=["gathered", "masked"])
def test_each_image_gets_its_own_jitter_order(masked):
    x = images(n=4)
    # no flips; jitter on/off; factors; order; gray; blur; sigma (layout of sample_params)
    params = torch.tensor(
        [
            [0, 0, 1, 1.5, 0.5, 1.7, 0.2, 0, 1, 2, 3, 0, 0, 1.0],
            [0, 0, 1, 1.5, 0.5, 1.7, 0.2, 3, 2, 1, 0, 0, 0, 1.0],
            [0, 0, 0, 1.5, 0.5, 1.7, 0.2, 0, 1, 2, 3, 0, 0, 1.0],  # jitter off
            [1, 0, 1, 1.0, 1.0, 0.0, 0.0, 2, 0, 3, 1, 1, 1, 1.0],  # flip, desaturate, gray, blur
        ]
    )
    normalize = NormalizeArgs(mean=(0, 0, 0), std=(1, 1, 1))
    blur = GaussianBlurArgs(kernel_size=5)
    got = B.finish_views(x.clone(), params, recipe(normalize=normalize, blur=blur), masked)
    steps = {
        0: lambda img, p: TF.adjust_brightness(img, p[3]),
        1: lambda img, p: TF.adjust_contrast(img, p[4]),
        2: lambda img, p: TF.adjust_saturation(img, p[5]),
        3: lambda img, p: TF.adjust_hue(img, p[6]),
    }
    for i in range(4):
        p = params[i].tolist()
        img = x[i]
        if p[0]:
            img = TF.horizontal_flip(img)
        if p[2]:
            for op in p[7:11]:
                img = steps[int(op)](img, p)
        if p[11]:
            img = TF.rgb_to_grayscale(img, num_output_channels=3)
        if p[12]:
            img = TF.gaussian_blur(img, kernel_size=[5, 5], sigma=[p[13], p[13]])
        torch.testing.assert_close(got[i], img, atol=1e-5, rtol=1e-5)


def draws(r, n=DRAWS, seed=0):
    rng = random.Random(seed)
    return torch.tensor([B.sample_params(r, rng) for _ in range(n)])


def test_drawn_probabilities_match_the_settings():
    r = recipe(
        jitter=ColorJitterArgs(prob=0.8),
        gray_prob=0.2,
        blur=GaussianBlurArgs(prob=0.5),
        flip=RandomFlipArgs(horizontal_prob=0.5, vertical_prob=0.1),
    )
    params = draws(r)
    for column, p in (
        (B.H_FLIP, 0.5),
        (B.V_FLIP, 0.1),
        (B.JITTER, 0.8),
        (B.GRAY, 0.2),
        (B.BLUR, 0.5),
    ):
        assert params[:, column].mean().item() == pytest.approx(p, abs=TOLERANCE), column
    brightness = params[:, B.FACTORS]
    assert brightness.min() >= 0.2 and brightness.max() <= 1.8  # brightness 0.8
    assert params[:, B.FACTORS + 3].abs().max() <= 0.2  # hue 0.2
    assert params[:, B.SIGMA].min() >= 0.1 and params[:, B.SIGMA].max() <= 2.0
    orders = params[:, B.ORDER : B.ORDER + 4]
    assert (orders.sort(dim=1).values == torch.arange(4.0)).all()  # permutations
    assert len({tuple(o) for o in orders.tolist()}) == 24  # every order occurs


def test_crop_boxes_follow_the_scale_range():
    crop = RandomResizeArgs(min_scale=0.25, max_scale=0.5)
    rng = random.Random(1)
    areas = []
    for _ in range(500):
        top, left, h, w = B.sample_crop(40, 60, crop, rng)
        assert top >= 0 and top + h <= 40 and left >= 0 and left + w <= 60
        areas.append(h * w / (40 * 60))
    assert min(areas) >= 0.22 and max(areas) <= 0.53


def bilinear_crop(image, top, left, h, w, size):
    """Reference: sample the whole image bilinearly at the centres of the crop's output
    pixels (src = top + (i + 0.5)·h/size - 0.5), clamping at the image border."""
    ys = top + (torch.arange(size) + 0.5) * h / size - 0.5
    xs = left + (torch.arange(size) + 0.5) * w / size - 0.5
    _, height, width = image.shape
    grid_y, grid_x = torch.meshgrid(
        (2 * ys + 1) / height - 1, (2 * xs + 1) / width - 1, indexing="ij"
    )
    grid = torch.stack([grid_x, grid_y], dim=-1).unsqueeze(0)
    return torch.nn.functional.grid_sample(
        image.unsqueeze(0), grid, mode="bilinear", padding_mode="border", align_corners=False
    )[0]


def test_batched_crop_is_bilinear_sampling_of_the_box():
    x = images(n=3, size=32)
    boxes = [(4, 6, 10, 12), (0, 0, 32, 32), (20, 3, 12, 25)]  # top, left, h, w
    xyxy = torch.tensor(
        [(left, top, left + w, top + h) for top, left, h, w in boxes], dtype=torch.float32
    )
    got = B.crop_batch(x, xyxy, (32, 32))
    for i, box in enumerate(boxes):  # upscaling: one sample per output pixel
        torch.testing.assert_close(got[i], bilinear_crop(x[i], *box, 32), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got[1], x[1])  # the whole image at its own size is itself
    # Away from the crop's edges this is torchvision's resized crop (which replicates the
    # crop's border where we read the real neighbouring pixels).
    expected = TF.resized_crop(x[0], *boxes[0], [32, 32], antialias=False)
    torch.testing.assert_close(got[0][:, 3:-3, 3:-3], expected[:, 3:-3, 3:-3])
    # Downscaling 4× averages the 4×4 pixels under each output pixel (no aliasing).
    down = B.crop_batch(x, xyxy[1:2], (8, 8))[0]
    torch.testing.assert_close(down, torch.nn.functional.avg_pool2d(x[0], 4))


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


def test_images_of_different_sizes_are_cropped_one_by_one():
    pipeline = B.BatchedViews([recipe(size=(12, 12))] * 2)
    items = [
        (1, torch.randint(0, 256, (3, 20, 30), dtype=torch.uint8)),
        (2, torch.randint(0, 256, (3, 40, 16), dtype=torch.uint8)),
    ]
    prepared = pipeline.prepare(items)
    assert prepared.images is None and prepared.crops[0].shape == (2, 3, 12, 12)
    views = pipeline.finish(prepared)
    assert [v.shape for v in views] == [(2, 3, 12, 12)] * 2


def test_colour_strength_scales_every_factor():
    params = draws(recipe(jitter=ColorJitterArgs(strength=0.5)), seed=3)
    for column in range(B.FACTORS, B.FACTORS + 3):  # 0.8 × 0.5 = 0.4 around 1
        assert params[:, column].min() >= 0.6 and params[:, column].max() <= 1.4
        assert params[:, column].min() < 0.62 and params[:, column].max() > 1.38
    hue = params[:, B.FACTORS + 3].abs()
    assert hue.max() <= 0.1 and hue.max() > 0.098


def test_finishing_on_the_device_equals_finishing_in_the_worker():
    """The GPU path ships uint8 pixels and parameters and finishes after the copy."""
    from ssl_core.data.dataset import BatchCollate

    pipeline = B.BatchedViews([recipe(), recipe()])
    items = [(7 + i, torch.randint(0, 256, (3, 20, 20), dtype=torch.uint8)) for i in range(5)]
    in_worker = BatchCollate(pipeline, finish=True)(items)
    shipped = BatchCollate(pipeline, finish=False)(items)
    assert shipped.images.dtype == torch.uint8
    on_device = pipeline.finish(shipped.to(torch.device("cpu")))
    for a, b in zip(in_worker, on_device, strict=True):
        torch.testing.assert_close(a, b)
