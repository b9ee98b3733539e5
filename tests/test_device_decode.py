"""Decoding JPEGs in the training process (nvJPEG on CUDA): the workers read bytes and draw
the views; the views must equal those of the cached path. Run here on the CPU, where
torchvision's batched decode_jpeg takes the same list input as the CUDA one."""

from __future__ import annotations

import random
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from conftest import cifar_dir
from ssl_core.data.dataset import BatchCollate, ImageCache, ViewDataset
from ssl_core.data.decode import decode_file
from ssl_core.data.device_decode import (
    EncodedCollate,
    crop_each,
    decode_on,
    finish_encoded,
    load_encoded,
)
from ssl_core.train.data import device_stages
from ssl_core.transforms import (
    BatchedOp,
    BatchedViews,
    ColorJitter,
    ColorJitterArgs,
    GaussianBlur,
    GaussianBlurArgs,
    RandomFlip,
    RandomFlipArgs,
    RandomGrayscale,
    RandomResizeArgs,
    RandomSolarize,
    SolarizeArgs,
    ViewRecipe,
    apply_drawn,
)
from ssl_core.transforms.batched import PreparedBatch, crop_batch

CPU = torch.device("cpu")


def simclr_ops(blur_prob: float = 0.5) -> list[BatchedOp]:
    return [
        RandomFlip(RandomFlipArgs()),
        ColorJitter(ColorJitterArgs()),
        RandomGrayscale(0.2),
        GaussianBlur(GaussianBlurArgs(prob=blur_prob)),
    ]


def pipeline(size: int = 16) -> BatchedViews:
    recipe = ViewRecipe(size=(size, size), crop=RandomResizeArgs(), ops=simclr_ops())
    return BatchedViews([recipe, recipe])


def photo(path: Path, width: int, height: int, seed: int, fmt: str = "JPEG") -> Path:
    """A smooth random picture (JPEG-friendly) of the given size."""
    generator = torch.Generator().manual_seed(seed)
    small = torch.randint(0, 256, (3, 6, 6), generator=generator, dtype=torch.uint8).float()
    big = torch.nn.functional.interpolate(small[None], (height, width), mode="bilinear")[0]
    array = big.round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
    Image.fromarray(array).save(path, fmt)
    return path


def sampler_items(n: int, seed: int = 5) -> list[tuple[int, int]]:
    return [(seed * 1000 + i, i) for i in range(n)]


def test_views_equal_the_cached_paths_views():
    """Real CIFAR JPEGs through real loader workers: the same seeds give the same views
    whether the images were decoded into the cache or decoded after the workers."""
    files = sorted((cifar_dir() / "cat").glob("*.jpg"))[:12]
    views = pipeline()
    cached = ViewDataset(None, cache=ImageCache.from_images([decode_file(f) for f in files]))
    encoded = ViewDataset(None, files=files, load=load_encoded)
    items = sampler_items(len(files))

    def loader(dataset, collate):
        return DataLoader(dataset, batch_size=6, sampler=items, num_workers=1, collate_fn=collate)

    expected = [views.finish(b) for b in loader(cached, BatchCollate(views, finish=False))]
    got = [finish_encoded(views, b, CPU) for b in loader(encoded, EncodedCollate(views))]
    assert len(got) == len(expected) == 2
    for got_batch, expected_batch in zip(got, expected, strict=True):
        for got_view, expected_view in zip(got_batch, expected_batch, strict=True):
            assert got_view.shape == (6, 3, 16, 16)
            torch.testing.assert_close(got_view, expected_view, atol=1e-5, rtol=1e-5)


def test_jpeg_bytes_stay_encoded_and_other_formats_are_decoded(tmp_path):
    jpeg = load_encoded(photo(tmp_path / "a.jpg", 30, 20, seed=1))
    png = load_encoded(photo(tmp_path / "b.png", 18, 24, seed=2, fmt="PNG"))
    assert jpeg.encoded and jpeg.data.dim() == 1 and (jpeg.height, jpeg.width) == (20, 30)
    assert not png.encoded and png.data.shape == (3, 24, 18)
    decoded = decode_on([jpeg, png], CPU)
    torch.testing.assert_close(decoded[0], decode_file(tmp_path / "a.jpg"), atol=0, rtol=0)
    torch.testing.assert_close(decoded[1], decode_file(tmp_path / "b.png"), atol=0, rtol=0)


def test_images_of_different_sizes_are_each_cropped_from_their_own_box(tmp_path):
    paths = [
        photo(tmp_path / f"{i}.jpg", w, h, seed=i)
        for i, (w, h) in enumerate([(40, 30), (17, 50), (64, 64)])
    ]
    images = [decode_file(p) for p in paths]
    boxes = torch.tensor([[2.0, 3.0, 30.0, 25.0], [0.0, 0.0, 17.0, 50.0], [10.0, 5.0, 60.0, 40.0]])
    crops = crop_each(images, boxes, (12, 12))
    for i, image in enumerate(images):  # each equals the batched crop of that image alone
        alone = crop_batch(image[None].float() / 255, boxes[i : i + 1], (12, 12))[0]
        torch.testing.assert_close(crops[i], alone, atol=1e-5, rtol=1e-5)
    batch = EncodedCollate(pipeline(12))([(i, load_encoded(p)) for i, p in enumerate(paths)])
    views = finish_encoded(pipeline(12), batch, CPU)
    assert [tuple(v.shape) for v in views] == [(3, 3, 12, 12)] * 2
    assert all(torch.isfinite(v).all() for v in views)


def test_a_jpeg_no_decoder_reads_is_replaced_with_a_warning(tmp_path):
    good = photo(tmp_path / "good.jpg", 24, 24, seed=3)
    broken = tmp_path / "broken.jpg"
    data = bytearray(good.read_bytes())
    data[200:] = b"\xff" * (len(data) - 200)  # header intact, entropy data destroyed
    broken.write_bytes(bytes(data))
    items = [load_encoded(good), load_encoded(broken), load_encoded(good)]
    with pytest.warns(UserWarning, match="broken.jpg"):
        decoded = decode_on(items, CPU)
    assert len(decoded) == 3  # the batch keeps its size
    torch.testing.assert_close(decoded[1], decode_file(good), atol=0, rtol=0)


@pytest.mark.parametrize(
    ("device", "on_device", "cached", "augment", "decode"),
    [
        ("cuda", True, True, True, False),  # cached: decoded once up front, augment on GPU
        ("cuda", True, False, True, True),  # read each epoch: nvJPEG too
        ("cuda", False, False, False, False),  # the user turned it off
        ("cpu", True, False, False, False),  # never on the CPU: the workers do it
    ],
)
def test_what_runs_on_the_device(device, on_device, cached, augment, decode):
    stages = device_stages(torch.device(device), on_device, cached, batched=True)
    assert (stages.augment, stages.decode) == (augment, decode)
    assert device_stages(torch.device(device), on_device, cached, batched=False).decode is False


def test_unreadable_files_raise_no_traceback_in_the_worker(tmp_path):
    """A file that disappears after the scan is skipped by the dataset like any other."""
    files = [photo(tmp_path / f"{i}.jpg", 20, 20, seed=i) for i in range(3)]
    dataset = ViewDataset(None, files=files, load=load_encoded)
    files[1].unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seed, image = dataset[(9, 1)]
    assert image.path == str(files[2]) and "1.jpg" in str(caught[0].message)


@dataclass
class RandomTint(BatchedOp):
    """A plugin's own op: with probability ``prob``, shift every pixel by a drawn offset and
    swap red and blue."""

    prob: float
    params = ("applied", "offset")

    def draw(self, rng: random.Random) -> Sequence[float]:
        return [float(rng.random() < self.prob), rng.uniform(-0.3, 0.3)]

    def apply(self, x: torch.Tensor, p: Mapping[str, torch.Tensor], masked: bool) -> torch.Tensor:
        def tint(images: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
            return images.add_(offsets.view(-1, 1, 1, 1)).clamp_(0, 1).flip(1)

        return apply_drawn(x, p["applied"] > 0, tint, p["offset"], masked)


def tinted(prob: float) -> list[ViewRecipe]:
    recipe = ViewRecipe((16, 16), RandomResizeArgs(), [*simclr_ops(), RandomTint(prob)])
    return [recipe, recipe]


def byol(solarize_prob: float) -> list[ViewRecipe]:
    """BYOL's two views: one always blurred and never solarized, the other rarely blurred
    and sometimes solarized."""
    return [
        ViewRecipe(
            (16, 16), RandomResizeArgs(), [*simclr_ops(1.0), RandomSolarize(SolarizeArgs())]
        ),
        ViewRecipe(
            (16, 16),
            RandomResizeArgs(),
            [*simclr_ops(0.1), RandomSolarize(SolarizeArgs(prob=solarize_prob))],
        ),
    ]


# name: (recipes given the op's probability, the op's probability, the op)
EXTENDED = {"plugin op": (tinted, 0.5, RandomTint), "byol": (byol, 0.2, RandomSolarize)}


def finish_masked(views: BatchedViews, batch: PreparedBatch) -> list[torch.Tensor]:
    """``finish`` as on a GPU: every op on the whole batch, kept where drawn."""
    assert batch.images is not None and batch.boxes is not None
    images = batch.images.float() / 255
    return [
        recipe.finish(crop_batch(images, boxes, recipe.size), params, masked=True)
        for recipe, boxes, params in zip(views.recipes, batch.boxes, batch.params, strict=True)
    ]


@pytest.mark.parametrize("case", list(EXTENDED))
def test_an_added_op_gives_the_same_views_on_every_path(tmp_path, case):
    make, prob, op_type = EXTENDED[case]
    views = BatchedViews(make(prob))
    paths = [photo(tmp_path / f"{i}.jpg", 40, 32, seed=i) for i in range(10)]
    seeds = range(1000, 1010)  # three of these draw BYOL's solarization (p = 0.2)
    decoded = [(seed, decode_file(path)) for seed, path in zip(seeds, paths, strict=True)]
    encoded = [(seed, load_encoded(path)) for seed, path in zip(seeds, paths, strict=True)]

    expected = BatchCollate(views, finish=True)(decoded)  # in the worker, on the CPU
    shipped = BatchCollate(views, finish=False)(decoded)
    one_by_one = [views.finish(views.prepare([item])) for item in decoded]
    by_path = {
        "finished after the copy": views.finish(shipped.to(CPU)),
        "finished masked": finish_masked(views, shipped),
        "decoded by nvJPEG": finish_encoded(views, EncodedCollate(views)(encoded), CPU),
        "image by image": [torch.cat(view) for view in zip(*one_by_one, strict=True)],
    }
    for path, got in by_path.items():
        for got_view, expected_view in zip(got, expected, strict=True):
            torch.testing.assert_close(
                got_view, expected_view, atol=1e-5, rtol=1e-5, msg=lambda m, p=path: f"{p}: {m}"
            )

    # The op's draws are used, on the nvJPEG path too: against the same recipes with the op
    # never applied (same draws otherwise), exactly the images that drew it changed.
    never = BatchedViews(make(0.0))
    untouched = finish_encoded(never, EncodedCollate(never)(encoded), CPU)
    drawn_any = False
    for v, recipe in enumerate(views.recipes):
        drawn = shipped.params[v][:, recipe.column(op_type, "applied")] > 0
        changed = (by_path["decoded by nvJPEG"][v] != untouched[v]).flatten(1).any(dim=1)
        assert torch.equal(changed, drawn), (v, changed, drawn)
        drawn_any |= bool(drawn.any())
    assert drawn_any
