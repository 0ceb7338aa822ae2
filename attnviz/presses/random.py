"""``random`` (kvpress RandomPress): the control a press must beat."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .base import Press
from .registry import register


@register
@dataclass(frozen=True)
class RandomPositions(Press):
    name = "random"
    kvpress_class = "RandomPress"
    summary = "Keeps random positions (the control every press must beat)."
    methods = ("Random, as kvpress's RandomPress with a seed: uniform scores from a generator seeded anew in "
               "every layer, so each layer draws the same numbers.")
    seed: int = field(default=0, metadata={"min": 0, "help": "the random generator's seed"})

    def score(self, view):
        gen = torch.Generator().manual_seed(self.seed)
        return torch.rand(1, *view.keys.shape[:-1], generator=gen)[0]
