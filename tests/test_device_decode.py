"""Decoding JPEGs in the training process (nvJPEG on CUDA): the workers read bytes and draw
the views; the views must equal those of the cached path. Run here on the CPU, where
torchvision's batched decode_jpeg takes the same list input as the CUDA one."""

from __future__ import annotations

import warnings
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
from ssl_core.train.loop import device_stages
from ssl_core.transforms import batched as B
from ssl_core.transforms.args import (
    ColorJitterArgs,
    GaussianBlurArgs,
    NormalizeArgs,
    RandomFlipArgs,
    RandomResizeArgs,
)

CPU = torch.device("cpu")


def pipeline(size: int = 16) -> B.BatchedViews:
    recipe = B.ViewRecipe(
        size=(size, size),
        crop=RandomResizeArgs(),
        flip=RandomFlipArgs(),
        jitter=ColorJitterArgs(),
        gray_prob=0.2,
        blur=GaussianBlurArgs(prob=0.5),
        normalize=NormalizeArgs(),
    )
    return B.BatchedViews([recipe, recipe])


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
        alone = B.crop_batch(image[None].float() / 255, boxes[i : i + 1], (12, 12))[0]
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
