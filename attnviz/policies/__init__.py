"""Registry of budget policies.  Adding one: write a small :class:`Policy`
subclass in its own file and list it in ``_POLICIES`` below."""

from __future__ import annotations

from ..budget import BudgetError
from .base import LayerView, Policy
from .full import Full
from .h2o import H2O
from .random import RandomKeys
from .sink_window import SinkWindow
from .topk import TopK
from .topp import TopP
from .window import Window

__all__ = ["POLICIES", "get_policy", "Policy", "LayerView"]

_POLICIES: tuple[type[Policy], ...] = (Full, TopK, TopP, Window, SinkWindow, H2O, RandomKeys)
POLICIES: dict[str, Policy] = {cls.name: cls() for cls in _POLICIES}


def get_policy(name: str) -> Policy:
    """The policy registered as ``name``; :class:`BudgetError` listing the known ones otherwise."""
    try:
        return POLICIES[name]
    except KeyError:
        raise BudgetError(f"unknown policy '{name}'; choose one of: {', '.join(POLICIES)}") from None
