"""The Transform interface: a named, schema-described recipe that turns one image into views."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from ssl_core.args import StrictArgs


class Transform:
    """Subclasses set ``name``, ``description`` and ``args_model`` and implement
    ``build_batched`` or ``build``.

    ``build`` returns a callable taking one uint8 image tensor (C×H×W, RGB) and returning the
    list of float views; it may import torch. By default it is the batched form run on one
    image at a time.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    args_model: ClassVar[type[StrictArgs]]

    def __init__(self, args: StrictArgs) -> None:
        self.args = args

    def build(self) -> Callable[[Any], list[Any]]:
        batched = self.build_batched()
        if batched is None:
            name = type(self).__name__
            raise NotImplementedError(f"{name} implements neither build() nor build_batched()")
        from ssl_core.transforms.batched import PerImageViews  # torch: only when building

        return PerImageViews(batched)

    def build_batched(self) -> Any:
        """Optionally, a ``ssl_core.transforms.BatchedViews`` doing the same work a batch at
        a time (much faster; the engine uses it when given). None: per image, ``build``."""
        return None
