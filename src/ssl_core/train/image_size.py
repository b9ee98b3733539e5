"""image_size "auto": the view size chosen from the images, once they are found and before
anything is built (a resume keeps its run's choice: see settle.py), so that config.json
holds the number and every process trains with it."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from pathlib import Path

from ssl_core.args import validate_args
from ssl_core.backbones.provider import InputSize
from ssl_core.config import ResolvedConfig
from ssl_core.data.dataset import sample_sizes
from ssl_core.transforms.args import AUTO_MIN_IMAGE_SIZE, ImageSizeMixin

# A backbone that takes any size gets a multiple of 8: within 8 px of the data, and feature
# maps of whole pixels through the first three stride-2 stages.
AUTO_MULTIPLE = 8


def resolve_image_size(
    resolved: ResolvedConfig, files: Sequence[Path]
) -> tuple[ResolvedConfig, str | None]:
    """``resolved`` with ``transform_args.image_size`` "auto" replaced by the chosen size,
    and the log line that says why; unchanged, with None, when the size was given."""
    transform_args = resolved.transform_args
    if getattr(transform_args, "image_size", None) != "auto":
        return resolved, None
    reference = getattr(transform_args, "reference_image_size", ImageSizeMixin.reference_image_size)
    takes = resolved.backbone.input_size()
    size, why = choose_image_size(sample_sizes(files), reference, takes, resolved.backbone.name)
    if takes.fixed is None:
        why += "; set transform_args.image_size to choose another"
    chosen = validate_args(
        type(transform_args),
        {**transform_args.model_dump(), "image_size": size},
        "transform_args",
    )
    note = f"image_size auto → {size[0]}×{size[1]} ({why})."
    return dataclasses.replace(resolved, transform_args=chosen), note


def choose_image_size(
    sizes: Sequence[tuple[int, int]], reference: int, takes: InputSize, model: str = "the model"
) -> tuple[tuple[int, int], str]:
    """The square view size for images of ``sizes`` (height, width): their median shorter
    side, at most ``reference``, rounded down to what the backbone takes (a multiple of 8
    or of its patch), at least AUTO_MIN_IMAGE_SIZE; a backbone's one fixed size wins."""
    if takes.fixed is not None:
        height, width = takes.fixed
        return (height, width), (
            f"{model} takes only {height}×{width} images; a size in its model_args builds it "
            f"for another"
        )
    multiple = takes.multiple if takes.multiple > 1 else AUTO_MULTIPLE
    floor = -(-AUTO_MIN_IMAGE_SIZE // multiple) * multiple  # the minimum, rounded up
    if not sizes:  # no header was readable in the sample: the method's own size
        side = max(reference // multiple * multiple, floor)
        return (side, side), "no image header in the sample could be read"
    median = int(statistics.median(min(h, w) for h, w in sizes))
    sampled = f"{len(sizes)} sampled image{'s' if len(sizes) != 1 else ''}"
    why = f"median shorter side of {sampled} is {median} px"
    if median > reference:
        why += f", above the method's reference size {reference}"
    else:
        why += f"; the method's reference size is {reference}"
    capped = min(median, reference)
    side = max(capped // multiple * multiple, floor)
    if side > capped:
        why += f"; raised to {side}: common backbones need at least {AUTO_MIN_IMAGE_SIZE} px"
    elif side < capped:
        why += f"; rounded down to a multiple of {multiple}"
    return (side, side), why
