"""Decode one image file to a uint8 RGB tensor (3×H×W), or None when it is unreadable.

torchvision.io (libjpeg-turbo, libpng, libwebp) decodes what it can; PIL is the fallback for
the rest (bmp, tiff, gif's first frame, ...). The header is read first so that a file claiming
an enormous size is refused before any memory is spent on it.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import BinaryIO

import torch
from PIL import Image

from ssl_core.transforms.functional import to_rgb

MAX_PIXELS = 100_000_000  # 10k × 10k; above this a file is skipped as a likely decompression bomb
TORCHVISION_FORMATS = frozenset({"JPEG", "PNG", "WEBP"})


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
                return to_rgb(decode_image(buffer, mode=ImageReadMode.RGB))
        except Exception:
            pass  # e.g. a truncated file: let PIL decide
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.seek(0)  # first frame of an animation
            rgb = image.convert("RGB")
            array = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8)
            return array.view(rgb.height, rgb.width, 3).permute(2, 0, 1).contiguous()
    except Exception as exc:
        raise Unreadable(f"cannot decode ({type(exc).__name__}: {exc})") from None


def decode_file(path: Path, max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise Unreadable(f"cannot read ({exc.strerror})") from None
    return decode_bytes(data, max_pixels)
