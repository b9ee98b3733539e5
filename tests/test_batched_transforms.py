"""The batched augmentation against torchvision's per-image functional ops."""

from __future__ import annotations

import random

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from ssl_core.transforms import (
    BatchedViews,
    ColorJitter,
    ColorJitterArgs,
    GaussianBlur,
    GaussianBlurArgs,
    NormalizeArgs,
    RandomFlip,
    RandomFlipArgs,
    RandomGrayscale,
    RandomResizeArgs,
    RandomSolarize,
    SolarizeArgs,
    ViewRecipe,
    functional,
)
from ssl_core.transforms.batched import crop_batch, sample_crop

DRAWS = 3000
TOLERANCE = 0.035
PLAIN = NormalizeArgs(mean=(0, 0, 0), std=(1, 1, 1))


def images(n=6, size=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=generator)


def recipe(
    size=(16, 16),
    flip=None,
    jitter=None,
    gray_prob=0.2,
    blur=None,
    solarize=None,
    normalize=None,
    crop=None,
) -> ViewRecipe:
    """SimCLR's ops (defaults unless given), and solarization when given."""
    ops = [
        RandomFlip(flip or RandomFlipArgs()),
        ColorJitter(jitter or ColorJitterArgs()),
        RandomGrayscale(gray_prob),
        GaussianBlur(blur or GaussianBlurArgs()),
    ]
    if solarize is not None:
        ops.append(RandomSolarize(solarize))
    return ViewRecipe(
        size=size,
        crop=crop or RandomResizeArgs(),
        ops=ops,
        normalize=normalize or NormalizeArgs(),
    )


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (functional.adjust_brightness, TF.adjust_brightness),
        (functional.adjust_contrast, TF.adjust_contrast),
        (functional.adjust_saturation, TF.adjust_saturation),
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
    got = functional.adjust_hue(x.clone(), shifts)
    for i, shift in enumerate(shifts.tolist()):
        torch.testing.assert_close(got[i], TF.adjust_hue(x[i], shift), atol=1e-5, rtol=1e-5)


def test_grayscale_matches_torchvision():
    x = images()
    torch.testing.assert_close(
        functional.grayscale(x).expand(-1, 3, -1, -1), TF.rgb_to_grayscale(x, num_output_channels=3)
    )


def test_blur_matches_torchvision_per_image():
    x = images(size=20)
    sigmas = torch.tensor([0.1, 0.5, 1.0, 1.5, 2.0, 0.7])
    got = functional.gaussian_blur(x, sigmas, kernel_size=5)
    for i, sigma in enumerate(sigmas.tolist()):
        expected = TF.gaussian_blur(x[i], kernel_size=[5, 5], sigma=[sigma, sigma])
        torch.testing.assert_close(got[i], expected, atol=1e-6, rtol=1e-5)


def rows(r: ViewRecipe, values: list[dict]) -> torch.Tensor:
    """Rows of drawn values for ``r``: zero but for the given {(op type, name): value}."""
    out = torch.zeros(len(values), r.num_params)
    for i, row in enumerate(values):
        for (op_type, name), value in row.items():
            out[i, r.column(op_type, name)] = value
    return out


def jitter(applied, order, brightness=1.5, contrast=0.5, saturation=1.7, hue=0.2):
    named = dict(brightness=brightness, contrast=contrast, saturation=saturation, hue=hue)
    return {
        (ColorJitter, "applied"): applied,
        **{(ColorJitter, name): value for name, value in named.items()},
        **{(ColorJitter, f"order_{i}"): step for i, step in enumerate(order)},
    }


JITTER_STEPS = {  # by the number ColorJitter's drawn order uses
    0: ("brightness", TF.adjust_brightness),
    1: ("contrast", TF.adjust_contrast),
    2: ("saturation", TF.adjust_saturation),
    3: ("hue", TF.adjust_hue),
}


@pytest.mark.parametrize("masked", [False, True], ids=["gathered", "masked"])
def test_each_image_gets_its_own_jitter_order(masked):
    x = images(n=4)
    r = recipe(blur=GaussianBlurArgs(kernel_size=5), normalize=PLAIN)
    sigma = {(GaussianBlur, "sigma"): 1.0}
    params = rows(
        r,
        [
            {**jitter(1, (0, 1, 2, 3)), **sigma},
            {**jitter(1, (3, 2, 1, 0)), **sigma},
            {**jitter(0, (0, 1, 2, 3)), **sigma},  # jitter off
            {  # flip, desaturate, gray, blur
                (RandomFlip, "horizontal"): 1,
                **jitter(1, (2, 0, 3, 1), brightness=1.0, contrast=1.0, saturation=0.0, hue=0.0),
                (RandomGrayscale, "applied"): 1,
                (GaussianBlur, "applied"): 1,
                **sigma,
            },
        ],
    )
    got = r.finish(x.clone(), params, masked)
    for i in range(4):

        def value(op_type, name, i=i):
            return params[i, r.column(op_type, name)].item()

        img = x[i]
        if value(RandomFlip, "horizontal"):
            img = TF.horizontal_flip(img)
        if value(ColorJitter, "applied"):
            for position in range(4):
                name, step = JITTER_STEPS[int(value(ColorJitter, f"order_{position}"))]
                img = step(img, value(ColorJitter, name))
        if value(RandomGrayscale, "applied"):
            img = TF.rgb_to_grayscale(img, num_output_channels=3)
        if value(GaussianBlur, "applied"):
            s = value(GaussianBlur, "sigma")
            img = TF.gaussian_blur(img, kernel_size=[5, 5], sigma=[s, s])
        torch.testing.assert_close(got[i], img, atol=1e-5, rtol=1e-5)


def draws(r, n=DRAWS, seed=0):
    """``n`` rows of drawn values (of a 32×32 image) from one generator."""
    rng = random.Random(seed)
    return torch.tensor([r.draw(32, 32, rng)[1] for _ in range(n)])


def test_drawn_probabilities_match_the_settings():
    r = recipe(
        jitter=ColorJitterArgs(prob=0.8),
        gray_prob=0.2,
        blur=GaussianBlurArgs(prob=0.5),
        flip=RandomFlipArgs(horizontal_prob=0.5, vertical_prob=0.1),
        solarize=SolarizeArgs(prob=0.3),
    )
    params = draws(r)

    def column(op_type, name):
        return params[:, r.column(op_type, name)]

    for op_type, name, p in (
        (RandomFlip, "horizontal", 0.5),
        (RandomFlip, "vertical", 0.1),
        (ColorJitter, "applied", 0.8),
        (RandomGrayscale, "applied", 0.2),
        (GaussianBlur, "applied", 0.5),
        (RandomSolarize, "applied", 0.3),
    ):
        drawn = column(op_type, name)
        assert set(drawn.tolist()) == {0.0, 1.0}, (op_type, name)
        assert drawn.mean().item() == pytest.approx(p, abs=TOLERANCE), (op_type, name)
    brightness = column(ColorJitter, "brightness")
    assert brightness.min() >= 0.2 and brightness.max() <= 1.8  # brightness 0.8
    assert column(ColorJitter, "hue").abs().max() <= 0.2  # hue 0.2
    sigma = column(GaussianBlur, "sigma")
    assert sigma.min() >= 0.1 and sigma.max() <= 2.0
    orders = torch.stack([column(ColorJitter, f"order_{i}") for i in range(4)], dim=1)
    assert (orders.sort(dim=1).values == torch.arange(4.0)).all()  # permutations
    assert len({tuple(o) for o in orders.tolist()}) == 24  # every order occurs


def test_a_recipe_knows_its_columns():
    r = recipe(solarize=SolarizeArgs())
    names = [(type(op), name) for op in r.ops for name in (*op.params, *op.early_params)]
    assert r.num_params == len(names) == 15
    assert [r.column(op_type, name) for op_type, name in names] == list(range(15))
    with pytest.raises(ValueError, match="0 ops"):
        r.column(RandomFlip, "sigma")
    with pytest.raises(ValueError, match="drawn values per image"):
        r.finish(images(n=2), torch.zeros(2, 14))


def test_solarize_matches_torchvision_per_image():
    x = images()
    for threshold in (0.0, 0.3, 0.5, 0.9, 1.0):
        got = functional.solarize(x, threshold)
        for i in range(len(x)):
            assert torch.equal(got[i], TF.solarize(x[i], threshold)), threshold


def test_certain_solarization_inverts_exactly_the_bright_pixels():
    whole = RandomResizeArgs(min_scale=1.0, min_ratio=1.0, max_ratio=1.0)
    off = dict(
        flip=RandomFlipArgs(horizontal_prob=0.0),
        jitter=ColorJitterArgs(prob=0.0),
        gray_prob=0.0,
        blur=GaussianBlurArgs(prob=0.0),
        normalize=PLAIN,
        crop=whole,
    )
    solarized = BatchedViews([recipe(**off, solarize=SolarizeArgs(prob=1.0, threshold=0.3))])
    generator = torch.Generator().manual_seed(4)
    items = [
        (i, torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8, generator=generator))
        for i in range(4)
    ]
    views = solarized.finish(solarized.prepare(items))[0]
    for (_, image), view in zip(items, views, strict=True):
        pixels = image.float() / 255  # 0.3 lies between two uint8 levels: no pixel is borderline
        expected = torch.where(pixels >= 0.3, 1 - pixels, pixels)
        torch.testing.assert_close(view, expected, atol=1e-6, rtol=0)
        assert (pixels >= 0.3).any() and (pixels < 0.3).any()


def test_crop_boxes_follow_the_scale_range():
    crop = RandomResizeArgs(min_scale=0.25, max_scale=0.5)
    rng = random.Random(1)
    areas = []
    for _ in range(500):
        top, left, h, w = sample_crop(40, 60, crop, rng)
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
    got = crop_batch(x, xyxy, (32, 32))
    for i, box in enumerate(boxes):  # upscaling: one sample per output pixel
        torch.testing.assert_close(got[i], bilinear_crop(x[i], *box, 32), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got[1], x[1])  # the whole image at its own size is itself
    # Away from the crop's edges this is torchvision's resized crop (which replicates the
    # crop's border where we read the real neighbouring pixels).
    expected = TF.resized_crop(x[0], *boxes[0], [32, 32], antialias=False)
    torch.testing.assert_close(got[0][:, 3:-3, 3:-3], expected[:, 3:-3, 3:-3])
    # Downscaling 4× averages the 4×4 pixels under each output pixel (no aliasing).
    down = crop_batch(x, xyxy[1:2], (8, 8))[0]
    torch.testing.assert_close(down, torch.nn.functional.avg_pool2d(x[0], 4))


def test_an_images_views_do_not_depend_on_its_batch():
    """What makes a 2-process step equal the 1-process step: views depend on the seed only."""
    pipeline = BatchedViews([recipe(), recipe()])
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
    pipeline = BatchedViews([recipe(size=(12, 12))] * 2)
    items = [
        (1, torch.randint(0, 256, (3, 20, 30), dtype=torch.uint8)),
        (2, torch.randint(0, 256, (3, 40, 16), dtype=torch.uint8)),
    ]
    prepared = pipeline.prepare(items)
    assert prepared.images is None and prepared.crops[0].shape == (2, 3, 12, 12)
    views = pipeline.finish(prepared)
    assert [v.shape for v in views] == [(2, 3, 12, 12)] * 2


def test_colour_strength_scales_every_factor():
    r = recipe(jitter=ColorJitterArgs(strength=0.5))
    params = draws(r, seed=3)
    for name in ("brightness", "contrast", "saturation"):  # 0.8 × 0.5 = 0.4 around 1
        factor = params[:, r.column(ColorJitter, name)]
        assert factor.min() >= 0.6 and factor.max() <= 1.4
        assert factor.min() < 0.62 and factor.max() > 1.38
    hue = params[:, r.column(ColorJitter, "hue")].abs()
    assert hue.max() <= 0.1 and hue.max() > 0.098


def test_finishing_on_the_device_equals_finishing_in_the_worker():
    """The GPU path ships uint8 pixels and parameters and finishes after the copy."""
    from ssl_core.data.dataset import BatchCollate

    pipeline = BatchedViews([recipe(), recipe()])
    items = [(7 + i, torch.randint(0, 256, (3, 20, 20), dtype=torch.uint8)) for i in range(5)]
    in_worker = BatchCollate(pipeline, finish=True)(items)
    shipped = BatchCollate(pipeline, finish=False)(items)
    assert shipped.images.dtype == torch.uint8
    on_device = pipeline.finish(shipped.to(torch.device("cpu")))
    for a, b in zip(in_worker, on_device, strict=True):
        torch.testing.assert_close(a, b)
