"""Finding and decoding images: every common format, odd modes, and broken files."""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib

import pytest
import torch
from PIL import Image

import ssl_core
from ssl_core import ConfigError
from ssl_core.data.dataset import decode_all
from ssl_core.data.decode import Unreadable, decode_bytes, decode_file
from ssl_core.data.scan import scan_images


def picture(mode: str = "RGB", size=(20, 12), seed: int = 0) -> Image.Image:
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (size[1], size[0], 3), dtype=torch.uint8, generator=generator)
    image = Image.fromarray(pixels.numpy(), "RGB")
    return image.convert(mode) if mode != "RGB" else image


def encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"])
def test_formats_decode_to_uint8_rgb(fmt):
    image = picture()
    out = decode_bytes(encoded(image, fmt))
    assert out.shape == (3, 12, 20) and out.dtype == torch.uint8
    if fmt in ("PNG", "BMP", "TIFF"):  # lossless: exact pixels
        assert torch.equal(out, torch.from_numpy(__import__("numpy").array(image)).permute(2, 0, 1))


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "1", "CMYK"])
def test_modes_become_rgb(mode):
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    image = picture(mode)
    out = decode_bytes(encoded(image, fmt))
    assert out.shape == (3, 12, 20)
    if mode == "L":
        assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])


def test_gif_takes_the_first_frame():
    first, second = picture(seed=1).convert("P"), picture(seed=2).convert("P")
    data = encoded(first, "GIF", save_all=True, append_images=[second])
    expected = decode_bytes(encoded(first, "GIF"))
    assert torch.equal(decode_bytes(data), expected)


def huge_png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width×height pixels, with no real pixel data behind it."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload))
            + kind
            + payload
            + struct.pack(">I", zlib.crc32(kind + payload))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"this is not an image at all", "not an image"),
        (huge_png_header(50_000, 50_000), "too many pixels"),
        (huge_png_header(12_000, 9_000), "over the limit"),
    ],
)
def test_unreadable_inputs_raise_unreadable(data, reason):
    with pytest.raises(Unreadable, match=reason):
        decode_bytes(data)


def test_truncated_files_are_unreadable():
    png = encoded(picture(size=(64, 64)), "PNG")
    with pytest.raises(Unreadable):
        decode_bytes(png[: len(png) // 2])


def make_mixed_folder(root):
    """Good images in several formats and folders, plus each kind of broken file."""
    (root / "a" / "deeper").mkdir(parents=True)
    (root / "b").mkdir()
    good = []
    for i in range(24):
        fmt, ext = [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("BMP", "bmp")][i % 4]
        folder = root / ("a/deeper" if i % 3 == 0 else "a" if i % 3 == 1 else "b")
        path = folder / f"img{i}.{ext.upper() if i % 5 == 0 else ext}"
        path.write_bytes(encoded(picture("L" if i % 7 == 0 else "RGB", (40, 36), i), fmt))
        good.append(path)
    (root / "b" / "empty.jpg").write_bytes(b"")
    (root / "b" / "text.png").write_text("not an image")
    png = encoded(picture(size=(64, 64)), "PNG")
    (root / "b" / "truncated.png").write_bytes(png[: len(png) // 2])
    (root / "b" / "bomb.png").write_bytes(huge_png_header(50_000, 50_000))
    (root / "b" / "readme.txt").write_text("ignored: not an image extension")
    return good


def test_scan_recurses_follows_symlinks_and_ignores_other_files(tmp_path):
    good = make_mixed_folder(tmp_path / "data")
    os.symlink(tmp_path / "data" / "a", tmp_path / "data" / "link_to_a")  # same files twice
    os.symlink(tmp_path / "data", tmp_path / "data" / "b" / "loop")  # a loop
    found = scan_images(tmp_path / "data")
    assert len(found) == len(good) + 4  # the broken ones are image-named, found, skipped later
    assert not any(p.suffix == ".txt" for p in found)
    assert scan_images([good[0], good[1]]) == sorted([good[0], good[1]])


def test_decode_all_skips_and_counts_broken_files(tmp_path):
    good = make_mixed_folder(tmp_path)
    cache, kept, skipped = decode_all(scan_images(tmp_path))
    assert sorted(kept) == sorted(good)
    assert len(skipped) == 4
    reasons = dict((p.name, why) for p, why in skipped.files)
    assert reasons["empty.jpg"] == "empty file"
    assert "too many pixels" in reasons["bomb.png"]
    assert len(cache) == 24
    assert torch.equal(cache[kept.index(good[1])], decode_file(good[1]))


@pytest.mark.parametrize("cache_images", [True, False])
def test_training_on_a_mixed_folder_reports_skipped_files(tmp_path, cache_images):
    make_mixed_folder(tmp_path / "data")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = ssl_core.pretrain(
            out=tmp_path / "run",
            data=tmp_path / "data",
            model="torchvision/resnet18",
            transform_args={"image_size": 32},
            method_args={"hidden_dim": 32, "output_dim": 16},
            epochs=1,
            batch_size=8,
            num_workers=0,
            cache_images=cache_images,
        )
    decode_warnings = [w for w in caught if "skipping unreadable image" in str(w.message)]
    if cache_images:
        assert (result.images, result.skipped_images) == (24, 4)
        assert decode_warnings == []
    else:  # headers only: the truncated file passes and is replaced when it fails to decode
        assert (result.images, result.skipped_images) == (25, 3)
        assert decode_warnings and "truncated.png" in str(decode_warnings[0].message)
    log = (tmp_path / "run" / "train.log").read_text()
    assert f"Skipped {result.skipped_images} unreadable image file(s)" in log
    assert result.steps == result.images // 8


def test_all_files_broken_is_a_clear_error(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"")
    with pytest.raises(ConfigError, match="None of the 1 image files could be read"):
        ssl_core.pretrain(out=tmp_path / "o", data=tmp_path, model="torchvision/resnet18")
    assert not (tmp_path / "o").exists()
