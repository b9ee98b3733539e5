"""The Method interface every pretraining method plugin implements.

A method class is defined in a module that imports no torch: it is registered and listed
without loading the heavy code. ``build`` imports what it needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ssl_core.args import StrictArgs
from ssl_core.optimizer_args import OptimizerArgs

if TYPE_CHECKING:
    from torch import nn

    from ssl_core.backbones.backbone import Backbone


class Method:
    """A self-supervised method: its schema, its defaults, and how it trains a backbone.

    Subclasses set the class attributes and implement ``build``. The module ``build`` returns
    takes the list of augmented views (each a float tensor N×C×H×W) and returns the scalar loss
    from ``forward``; it must hold the backbone as its ``backbone`` attribute.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    args_model: ClassVar[type[StrictArgs]]
    transform: ClassVar[str]
    """Name of the registered transform that makes this method's views."""
    transform_defaults: ClassVar[dict[str, Any]] = {}
    """Overrides of the transform's own defaults for this method (nested dict)."""
    default_epochs: ClassVar[int] = 100
    default_optimizer: ClassVar[OptimizerArgs] = OptimizerArgs()
    sync_batchnorm: ClassVar[bool] = False
    """Convert BatchNorm to SyncBatchNorm when training on several processes."""

    def __init__(self, args: StrictArgs) -> None:
        self.args = args

    def build(self, backbone: Backbone) -> nn.Module:
        raise NotImplementedError(f"{type(self).__name__} does not implement build(backbone)")
