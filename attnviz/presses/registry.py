"""The press registry: ``@register`` adds a press class under its ``name``."""

from __future__ import annotations

from ..plugins import Registry
from .base import Press

__all__ = ["PRESSES", "register", "get_press"]

PRESSES: Registry[Press] = Registry("press", Press)
"""Name -> press class, built-in ones first, then plug-ins in the order they were imported."""

register = PRESSES.register


def get_press(name: str, **params) -> Press:
    """The press registered as ``name`` with ``params``; :class:`~attnviz.budget.BudgetError` for an unknown
    name (listing the known ones) or parameter."""
    return PRESSES.get(name, **params)
