"""View-making transforms: the interface, the argument schemas of the core ops, and (in
``ssl_core.transforms.ops``, which imports torch) the ops themselves."""

from ssl_core.transforms.base import Transform

__all__ = ["Transform"]
