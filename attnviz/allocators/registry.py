"""The allocator registry: ``@register`` adds an allocator class under its ``name``."""

from __future__ import annotations

from ..plugins import Registry
from .base import Allocator

__all__ = ["ALLOCATORS", "register", "get_allocator"]

ALLOCATORS: Registry[Allocator] = Registry("allocator", Allocator)
"""Name -> allocator class, built-in ones first, then plug-ins in the order they were imported."""

register = ALLOCATORS.register


def get_allocator(name: str, **params) -> Allocator:
    """The allocator registered as ``name`` with ``params``; :class:`~attnviz.budget.BudgetError` for an
    unknown name (listing the known ones) or parameter."""
    return ALLOCATORS.get(name, **params)
