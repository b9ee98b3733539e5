"""Nasty data: every odd file a real image folder holds is used, skipped with a reason, or
ignored; none hangs the scan or the decoding, and none crashes the run."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import struct
import threading
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from conftest import pretrain_args, run_ssl
from ssl_core.data.dataset import Skipped, ViewDataset, check_headers, decode_all, estimated_bytes
from ssl_core.data.decode import MAX_PIXELS, decode_bytes, decode_file
from ssl_core.data.scan import scan_images, shown_path

SECONDS = 20  # far above what any case takes; a FIFO that is opened blocks forever


def within(seconds: float, function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)``, failing the test (instead of hanging it) when it does not return."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = function(*args)
        except BaseException as exc:  # re-raised in the test's thread
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{function.__name__} did not return within {seconds} s"
    if "error" in result:
        raise result["error"]
    return result["value"]


def picture(size: tuple[int, int] = (16, 12), seed: int = 0, mode: str = "RGB") -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB")
    return image if mode == "RGB" else image.convert(mode)


def encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def as_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = struct.pack(">I", zlib.crc32(kind + payload))
    return struct.pack(">I", len(payload)) + kind + payload + crc


def png16(pixels: np.ndarray) -> bytes:
    """A 16-bit PNG (grey: H×W, RGB: H×W×3), which PIL cannot write in colour."""
    height, width = pixels.shape[:2]
    colour_type = 2 if pixels.ndim == 3 else 0
    rows = pixels.astype(">u2").reshape(height, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter 0 before each row
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(raw))
        + png_chunk(b"IEND", b"")
    )


def huge_png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width×height pixels, with no pixel data behind it."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IEND", b"")


def sixteen_bit(seed: int = 0, shape: tuple[int, ...] = (12, 16)) -> np.ndarray:
    """Every corner of the 16-bit range: 0, 65535, values next to rounding edges, random."""
    values = np.random.default_rng(seed).integers(0, 65536, shape, dtype=np.int64)
    flat = values.reshape(-1)
    flat[:8] = [0, 65535, 128, 129, 385, 386, 65406, 65407]  # k·257 ± 128.5 edges
    return values.astype(np.uint16)


def eight_bit_reference(values: np.ndarray) -> torch.Tensor:
    """What a 16-bit image must become: value · 255 / 65535 rounded, computed in float64."""
    scaled = np.round(values.astype(np.float64) * 255 / 65535).astype(np.uint8)
    if scaled.ndim == 2:
        scaled = np.repeat(scaled[:, :, None], 3, axis=2)
    return torch.from_numpy(scaled).permute(2, 0, 1)


def exif_rotated(fmt: str) -> tuple[bytes, torch.Tensor]:
    """A 24×10 image stored with EXIF orientation 6 (rotate 90° clockwise to show), and
    what a viewer shows: 10×24 pixels, as PIL's exif_transpose turns it."""
    exif = Image.Exif()
    exif[0x0112] = 6
    options = {"quality": 95} if fmt == "JPEG" else {"lossless": True} if fmt == "WEBP" else {}
    data = encoded(picture((24, 10), seed=5), fmt, exif=exif.tobytes(), **options)
    with Image.open(io.BytesIO(data)) as image:
        shown = ImageOps.exif_transpose(image)
        return data, as_tensor(shown)


# --- 16-bit images ---------------------------------------------------------------------


def tiff(image: Image.Image) -> bytes:
    return encoded(image, "TIFF")


SIXTEEN_BIT = {
    "png-grey": lambda v: png16(v),
    "png-rgb": lambda v: png16(np.stack([v, v[::-1], 65535 - v], axis=2)),
    "tiff-I;16": lambda v: tiff(Image.fromarray(v)),
    "tiff-I": lambda v: tiff(Image.fromarray(v.astype(np.int32))),
    "tiff-F": lambda v: tiff(Image.fromarray(v.astype(np.float32))),
    "pgm-16": lambda v: b"P5\n16 12\n65535\n" + v.astype(">u2").tobytes(),
}


def sixteen_bit_reference(kind: str, values: np.ndarray) -> torch.Tensor:
    if kind == "png-rgb":
        return eight_bit_reference(np.stack([values, values[::-1], 65535 - values], axis=2))
    return eight_bit_reference(values)


@pytest.mark.parametrize("kind", sorted(SIXTEEN_BIT))
def test_16bit_images_are_scaled_to_8bit(kind):
    values = sixteen_bit()
    out = decode_bytes(SIXTEEN_BIT[kind](values))
    assert out.dtype == torch.uint8
    assert torch.equal(out, sixteen_bit_reference(kind, values))


def test_float_images_in_unit_range_are_scaled_by_255():
    values = np.linspace(0, 1, 12 * 16, dtype=np.float32).reshape(12, 16)
    out = decode_bytes(tiff(Image.fromarray(values)))
    expected = np.round(values.astype(np.float64) * 255).astype(np.uint8)
    assert torch.equal(out, torch.from_numpy(expected).expand(3, -1, -1))


def tiff16_rgb(pixels: np.ndarray) -> bytes:
    """An uncompressed 16-bit RGB TIFF (H×W×3), which PIL cannot write."""
    height, width = pixels.shape[:2]
    data = pixels.astype("<u2").tobytes()
    tags = [(256, width), (257, height), (258, None), (259, 1), (262, 2), (273, None)]
    tags += [(277, 3), (278, height), (279, len(data))]
    bits_at = 8 + 2 + 12 * len(tags) + 4
    values = {258: bits_at, 273: bits_at + 6}  # offsets: bits per sample, then the pixels
    ifd = struct.pack("<H", len(tags))
    for tag, value in tags:
        kind, count = (4, 1) if tag in (273, 279) else (3, 3 if tag == 258 else 1)
        value = values.get(tag, value)
        packed = (
            struct.pack("<I", value) if kind == 4 or count > 1 else struct.pack("<HH", value, 0)
        )
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    header = b"II*\x00" + struct.pack("<I", 8)
    return header + ifd + struct.pack("<I", 0) + struct.pack("<3H", 16, 16, 16) + data


def test_16bit_colour_tiff_is_within_one_level():
    """PIL reads a 16-bit colour TIFF as 8-bit RGB itself, keeping the high byte: at most one
    level off the rounded value, and never the low byte (which looks like noise)."""
    values = np.stack([sixteen_bit(seed=s) for s in range(3)], axis=2)
    out = decode_bytes(tiff16_rgb(values)).int()
    difference = out - eight_bit_reference(values).int()
    assert difference.abs().max() <= 1


@pytest.mark.parametrize("with_8bit", [False, True], ids=["only-16bit", "mixed"])
def test_16bit_images_alone_or_mixed_decode_on_both_paths(tmp_path, with_8bit):
    expected = {}
    for i, kind in enumerate(sorted(SIXTEEN_BIT)):
        values = sixteen_bit(seed=i)
        path = tmp_path / f"{kind}.{kind.split('-')[0]}"
        path.write_bytes(SIXTEEN_BIT[kind](values))
        expected[path] = sixteen_bit_reference(kind, values)
    if with_8bit:
        for i in range(3):
            path = tmp_path / f"eight{i}.png"
            picture(seed=i).save(path)
            expected[path] = as_tensor(picture(seed=i))
    files = scan_images(tmp_path)
    cache, kept, skipped = decode_all(files)  # cached: one uint8 tensor for all
    assert len(skipped) == 0 and sorted(kept) == sorted(expected)
    assert cache.storage.dtype == torch.uint8
    on_the_fly = ViewDataset(None, files=check_headers(files)[0])  # cache_images=False
    assert on_the_fly.files == kept
    for index, path in enumerate(kept):
        assert torch.equal(cache[index], expected[path]), path.name
        assert torch.equal(on_the_fly.image(index), expected[path]), path.name


# --- the table -------------------------------------------------------------------------


def write(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    return make


def fifo(folder: Path) -> Path:
    path = folder / "pipe.jpg"
    os.mkfifo(path)
    return path


def unix_socket(folder: Path) -> Path:
    path = folder / "sock.jpg"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))  # the file stays after the socket closes
    server.close()
    return path


def symlink(name: str, target: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        path.symlink_to(target)
        return path

    return make


def non_utf8_name(stem: bytes, data: bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        name = os.fsencode(folder) + b"/" + stem + b"\xff\xfe name.jpg"
        with open(name, "wb") as handle:  # a bytes path: any bytes but / and NUL
            handle.write(data)
        return Path(os.fsdecode(name))

    return make


JPEG = encoded(picture((64, 48), seed=3), "JPEG")
PALETTE = picture(seed=4, mode="P")
PALETTE.info["transparency"] = 0
ANIMATED = encoded(
    picture(seed=6, mode="P"), "GIF", save_all=True, append_images=[picture(seed=7, mode="P")]
)
EXIF_JPEG, EXIF_JPEG_SHOWN = exif_rotated("JPEG")
EXIF_WEBP, EXIF_WEBP_SHOWN = exif_rotated("WEBP")
GREY16 = sixteen_bit(seed=9)


@dataclass
class Case:
    """One nasty file: ``used`` (and then, where known, the pixels it must decode to),
    ``skipped`` with a reason, or ``ignored`` (never even listed)."""

    make: Callable[[Path], Path]
    outcome: str
    reason: str = ""
    pixels: Callable[[], torch.Tensor] | None = None
    shape: tuple[int, int, int] | None = None
    header_outcome: str = ""  # where the header-only check (cache_images=False) differs


CASES = {
    "empty": Case(write("empty.jpg", b""), "skipped", "empty file"),
    "truncated-jpeg": Case(
        write("truncated.jpg", JPEG[: len(JPEG) // 2]),
        "skipped",
        "cannot decode",
        header_outcome="used",  # its header is fine: the workers replace it when it fails
    ),
    "text-as-jpg": Case(write("text.jpg", b"just some words\n" * 20), "skipped", "not an image"),
    "one-pixel": Case(write("tiny.png", encoded(picture((1, 1)), "PNG")), "used", shape=(3, 1, 1)),
    "over-pixel-limit": Case(
        write("huge.png", huge_png_header(MAX_PIXELS // 9_000 + 1, 9_000)),
        "skipped",
        "over the limit",
    ),
    "decompression-bomb": Case(
        write("bomb.png", huge_png_header(50_000, 50_000)), "skipped", "too many pixels"
    ),
    "16-bit-png": Case(
        write("grey16.png", png16(GREY16)), "used", pixels=lambda: eight_bit_reference(GREY16)
    ),
    "cmyk-jpeg": Case(
        write("cmyk.jpg", encoded(picture(seed=8, mode="CMYK"), "JPEG")), "used", shape=(3, 12, 16)
    ),
    "palette-transparency": Case(
        write("palette.png", encoded(PALETTE, "PNG")), "used", pixels=lambda: as_tensor(PALETTE)
    ),
    "animated-gif": Case(
        write("animated.gif", ANIMATED),
        "used",
        pixels=lambda: as_tensor(Image.open(io.BytesIO(ANIMATED))),  # the first frame
    ),
    "exif-rotated-jpeg": Case(
        write("rotated.jpg", EXIF_JPEG), "used", pixels=lambda: EXIF_JPEG_SHOWN
    ),
    "exif-rotated-webp": Case(
        write("rotated.webp", EXIF_WEBP), "used", pixels=lambda: EXIF_WEBP_SHOWN
    ),
    "broken-symlink": Case(
        symlink("gone.jpg", "/nonexistent/ssl-core-test.jpg"), "skipped", "broken symbolic link"
    ),
    "symlink-loop": Case(symlink("loop.jpg", "loop.jpg"), "skipped", "Too many levels of symbolic"),
    "fifo": Case(fifo, "skipped", "not a regular file (FIFO)"),
    "socket": Case(unix_socket, "skipped", "not a regular file (socket)"),
    "device": Case(symlink("null.jpg", "/dev/null"), "skipped", "not a regular file (device)"),
    "non-utf8-name-unreadable": Case(
        non_utf8_name(b"bad", b"not an image"), "skipped", "not an image"
    ),
    "non-utf8-name-good": Case(
        non_utf8_name(b"good", encoded(picture(seed=10), "PNG")),
        "used",
        pixels=lambda: as_tensor(picture(seed=10)),
    ),
    "non-ascii-name": Case(
        write("café 猫.png", encoded(picture(seed=11), "PNG")),
        "used",
        pixels=lambda: as_tensor(picture(seed=11)),
    ),
    "hidden-file": Case(write(".hidden.jpg", encoded(picture(), "JPEG")), "ignored"),
    "not-an-image-extension": Case(write("notes.txt", b"hello"), "ignored"),
    "nested-folders": Case(
        write("a/b/c/deep.png", encoded(picture(seed=12), "PNG")),
        "used",
        pixels=lambda: as_tensor(picture(seed=12)),
    ),
}


def good_images(folder: Path, count: int, size: tuple[int, int] = (16, 12)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"good{i}.jpg"
        picture(size, seed=100 + i).save(path, quality=90)
        paths.append(path)
    return paths


def unblock(path: Path) -> None:
    """Give a reader stuck opening a FIFO its end of file, so that no thread stays blocked."""
    with contextlib.suppress(OSError):  # no reader waiting: nothing to unblock
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


@pytest.mark.parametrize("name", list(CASES))
def test_nasty_file(tmp_path, name):
    case = CASES[name]
    folder = tmp_path / "data"
    good = good_images(folder, 2)
    nasty = case.make(folder)
    try:
        files = within(SECONDS, scan_images, folder)
        cached, kept, skipped = within(SECONDS, decode_all, files)
        header_kept, header_skipped = within(SECONDS, check_headers, files)
        within(SECONDS, estimated_bytes, files)  # samples the headers: opens files too
    finally:
        if name == "fifo":
            unblock(nasty)
    if case.outcome == "ignored":
        assert files == sorted(good)
        return
    assert nasty in files
    for outcome, used, left_out in [
        (case.outcome, kept, skipped),
        (case.header_outcome or case.outcome, header_kept, header_skipped),
    ]:
        if outcome == "used":
            assert nasty in used and len(left_out) == 0, left_out.summary()
        else:
            assert used == good
            [(path, reason)] = left_out.files
            assert path == nasty and case.reason in reason, reason
            summary = left_out.summary()
            assert summary.encode("utf-8") and shown_path(nasty) in summary  # printable
    if case.outcome == "used":
        image = cached[kept.index(nasty)]
        assert image.dtype == torch.uint8 and image.shape[0] == 3
        if case.shape is not None:
            assert image.shape == case.shape
        if case.pixels is not None:
            assert torch.equal(image, case.pixels())
        on_the_fly = ViewDataset(None, files=header_kept).image(header_kept.index(nasty))
        assert torch.equal(on_the_fly, image)  # both paths decode it alike
    elif case.header_outcome == "used":
        dataset = ViewDataset(None, files=header_kept)
        with pytest.warns(UserWarning, match="skipping unreadable image .*truncated.jpg"):
            replaced = dataset.image(header_kept.index(nasty))  # the next image instead
        assert torch.equal(replaced, decode_file(good[0]))


# --- names -----------------------------------------------------------------------------


def test_shown_path_escapes_bytes_that_are_not_utf8():
    bad = Path(os.fsdecode(b"/data/bad\xff\xfe.jpg"))
    assert shown_path(bad) == "/data/bad\\xff\\xfe.jpg"
    assert shown_path(Path("/data/café 猫.jpg")) == "/data/café 猫.jpg"
    summary = Skipped([(bad, "not an image")]).summary()
    assert summary == "Skipped 1 unreadable image file(s): /data/bad\\xff\\xfe.jpg (not an image)."
    summary.encode("utf-8")  # strict: what a log file or the console needs


def test_unreadable_non_utf8_name_warns_printably(tmp_path):
    good = good_images(tmp_path, 1)
    bad = non_utf8_name(b"bad", JPEG[: len(JPEG) // 2])(
        tmp_path
    )  # the header passes, decoding fails
    dataset = ViewDataset(None, files=[bad, *good])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset.image(0)
    [warning] = caught
    message = str(warning.message)
    message.encode("utf-8")
    assert "bad\\xff\\xfe name.jpg" in message


# --- end to end --------------------------------------------------------------------------


def test_pretrain_on_a_folder_of_nasty_files(tmp_path):
    """``ssl pretrain`` on every nasty file above plus 8 good images: it trains, says which
    files it skipped and why, and prints no traceback."""
    folder = tmp_path / "data"
    good_images(folder / "good", 8, size=(32, 32))
    made = {name: case.make(folder) for name, case in CASES.items()}
    skipped = sorted(made[name] for name, case in CASES.items() if case.outcome == "skipped")
    used = sum(case.outcome == "used" for case in CASES.values())
    try:
        result = run_ssl(
            *pretrain_args(
                out=tmp_path / "run",
                data=folder,
                model="torchvision/resnet18",
                epochs=1,
                batch_size=4,
                num_workers=0,
                transform_args="image_size=32",
                method_args=["hidden_dim=32", "output_dim=16"],
            ),
            timeout=240,
        )
    finally:
        unblock(made["fifo"])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output
    assert f"{8 + used} images ({len(skipped)} skipped)" in " ".join(output.split())
    log = (tmp_path / "run" / "train.log").read_text(encoding="utf-8")
    assert f"Skipped {len(skipped)} unreadable image file(s)" in log
    for path in skipped[:5]:  # the summary names the first five
        assert shown_path(path.relative_to(folder)) in log, path
    assert f"and {len(skipped) - 5} more" in log
