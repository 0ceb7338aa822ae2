"""``knorm`` (kvpress KnormPress; Devoto et al. 2024): keys with a small norm matter most."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Press
from .registry import register


@register
@dataclass(frozen=True)
class Knorm(Press):
    name = "knorm"
    kvpress_class = "KnormPress"
    summary = "Keeps the keys with the smallest norm (they tend to draw the most attention)."
    methods = ("Key norm ([Devoto et al., 2024](https://arxiv.org/abs/2406.11430)), as kvpress's KnormPress: "
               "score = −‖k‖; no attention is computed.")

    def score(self, view):
        return -view.keys.norm(dim=-1)
