"""The policy registry: ``@register`` adds a policy class under its ``name``."""

from __future__ import annotations

from ..plugins import Registry
from .base import Policy

__all__ = ["POLICIES", "register", "get_policy"]

POLICIES: Registry[Policy] = Registry("policy", Policy)
"""Name -> policy class, built-in ones first, then plug-ins in the order they were imported."""

register = POLICIES.register


def get_policy(name: str, **params) -> Policy:
    """The policy registered as ``name`` with ``params`` (defaults for the rest).

    :class:`~attnviz.budget.BudgetError` for an unknown name (listing the known ones) or parameter.
    """
    return POLICIES.get(name, **params)
