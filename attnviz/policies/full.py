"""``full``: every key the model's own mask allows (the reference)."""

from dataclasses import dataclass

from .base import Policy
from .registry import register


@register
@dataclass(frozen=True)
class Full(Policy):
    name = "full"
    summary = "Every allowed key: the model as trained, the reference for all quality numbers."
    reference = True
    scores_all_pairs = False  # scored pairs == kept pairs == allowed pairs
    default_keys = None

    def keep(self, scores, allowed, budget, view):
        return None
