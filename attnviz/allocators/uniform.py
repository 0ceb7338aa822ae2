"""``uniform``: every layer, head and row gets the same budget (the default, and what other allocators beat)."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Allocator
from .registry import register


@register
@dataclass(frozen=True)
class Uniform(Allocator):
    name = "uniform"
    summary = "Every layer, head and query gets the same K keys."
    methods = ("Uniform: each query row of every layer and head keeps min(K, its keys). The baseline every "
               "other allocator spends the same total against.")
    uniform = True
