"""Decode one image file to a uint8 RGB tensor (3×H×W), or None when it is unreadable.

torchvision.io (libjpeg-turbo, libpng, libwebp) decodes what it can; PIL is the fallback for
the rest (bmp, tiff, gif's first frame, ...). The header is read first so that a file claiming
an enormous size is refused before any memory is spent on it. Only regular files are opened
(a FIFO would block forever, a device never ends); 16-bit images are scaled to 8 bits; the
EXIF orientation is applied, as every image viewer does.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path
from typing import BinaryIO

import torch
from PIL import Image, ImageOps

from ssl_core.transforms.functional import to_rgb

MAX_PIXELS = 100_000_000  # 10k × 10k; above this a file is skipped as a likely decompression bomb
TORCHVISION_FORMATS = frozenset({"JPEG", "PNG", "WEBP"})
EXIF_ORIENTATION = 0x0112
FILE_KINDS = (
    (stat.S_ISDIR, "directory"),
    (stat.S_ISFIFO, "FIFO"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "device"),
    (stat.S_ISBLK, "device"),
)


class Unreadable(Exception):
    """Why a file was skipped."""


def read_header(source: bytes | BinaryIO, max_pixels: int = MAX_PIXELS) -> tuple[str, int, int]:
    """(format, width, height) from the header alone. ``source`` is the file's bytes or the
    open file, of which only the header is read."""
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    if not stream.read(1):
        raise Unreadable("empty file")
    stream.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(stream) as image:
                fmt, (width, height) = image.format or "", image.size
    except Image.DecompressionBombError as exc:
        raise Unreadable(f"too many pixels ({exc})") from None
    except Exception as exc:
        raise Unreadable(f"not an image ({type(exc).__name__})") from None
    if width * height > max_pixels:
        raise Unreadable(f"{width}×{height} pixels is over the limit of {max_pixels}")
    if width == 0 or height == 0:
        raise Unreadable("zero-sized image")
    return fmt, width, height


def decode_bytes(data: bytes, max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    """uint8 RGB tensor 3×H×W; raises Unreadable."""
    fmt, _, _ = read_header(data, max_pixels)
    if fmt in TORCHVISION_FORMATS:
        from torchvision.io import ImageReadMode, decode_image

        try:
            buffer = torch.frombuffer(bytearray(data), dtype=torch.uint8)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                image = decode_image(buffer, mode=ImageReadMode.RGB, apply_exif_orientation=True)
            if not _rotated_webp(fmt, data):
                return to_rgb(image)
        except Exception:
            pass  # e.g. a truncated file: let PIL decide
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.seek(0)  # first frame of an animation
            return _pil_to_tensor(ImageOps.exif_transpose(image))
    except Exception as exc:
        raise Unreadable(f"cannot decode ({type(exc).__name__}: {exc})") from None


def _rotated_webp(fmt: str, data: bytes) -> bool:
    """torchvision applies the EXIF orientation of JPEG and PNG files, not of WEBP ones."""
    if fmt != "WEBP":
        return False
    with Image.open(io.BytesIO(data)) as image:
        return image.getexif().get(EXIF_ORIENTATION, 1) != 1


def _pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """uint8 RGB 3×H×W. PIL's own conversion would clip 16-bit grey (modes I;16, I, F) at
    255, so those are scaled here; float images within [0, 1] are taken as that range."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        grey = image.convert("F")
        values = torch.frombuffer(bytearray(grey.tobytes()), dtype=torch.float32).double()
        values = values.nan_to_num(0.0).view(grey.height, grey.width)
        top = 1.0 if values.min() >= 0 and values.max() <= 1 else 65535.0
        eight_bit = values.clamp(0, top).mul(255 / top).round().to(torch.uint8)
        return to_rgb(eight_bit)
    rgb = image.convert("RGB")
    array = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8)
    return array.view(rgb.height, rgb.width, 3).permute(2, 0, 1).contiguous()


def open_image_file(path: Path) -> BinaryIO:
    """``path`` opened for reading when it is a regular file (symlinks followed); anything
    else is Unreadable and never opened: a FIFO would block forever, a device never ends."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise Unreadable("broken symbolic link" if path.is_symlink() else "missing file") from None
    except OSError as exc:
        raise Unreadable(f"cannot read ({exc.strerror})") from None
    _require_regular(mode)
    try:
        # Non-blocking in case it became a FIFO since the stat; no effect on a regular file.
        handle = open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb")  # noqa: SIM115
    except OSError as exc:
        raise Unreadable(f"cannot read ({exc.strerror})") from None
    try:
        _require_regular(os.fstat(handle.fileno()).st_mode)
    except Unreadable:
        handle.close()
        raise
    return handle


def _require_regular(mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in FILE_KINDS if test(mode)), "special file")
    raise Unreadable(f"not a regular file ({kind})")


def read_image_file(path: Path) -> bytes:
    """The bytes of a regular file; raises Unreadable."""
    with open_image_file(path) as handle:
        try:
            return handle.read()
        except OSError as exc:
            raise Unreadable(f"cannot read ({exc.strerror})") from None


def decode_file(path: Path, max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    return decode_bytes(read_image_file(path), max_pixels)
