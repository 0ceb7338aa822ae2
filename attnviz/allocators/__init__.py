"""Allocators: how one total budget is spent across layers, heads and query rows.

An allocator is a small frozen dataclass whose fields are its parameters, registered by name, as a
policy is (:mod:`attnviz.policies`).  Built-in ones live one per file here; a user's own live in
modules named in ``ATTNVIZ_PLUGINS`` (:func:`attnviz.plugins.load_plugins`).
"""

from __future__ import annotations

from .base import Allocator, Setting, round_to_total
from .registry import ALLOCATORS, get_allocator, register

# Built-in allocators register themselves on import, in this order (the order of lists in the app).
from .uniform import Uniform  # noqa: E402  isort: skip
from .pyramid import Pyramid, pyramid_keys  # noqa: E402  isort: skip
from .heads import Heads, pooled_counts  # noqa: E402  isort: skip
from .price import Price  # noqa: E402  isort: skip
from .marginal import Marginal  # noqa: E402  isort: skip
from .duo import Duo  # noqa: E402  isort: skip

__all__ = ["ALLOCATORS", "Allocator", "Setting", "get_allocator", "register", "round_to_total", "Uniform",
           "Pyramid", "pyramid_keys", "Heads", "pooled_counts", "Price", "Marginal", "Duo"]
