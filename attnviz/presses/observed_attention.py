"""``observed_attention`` (kvpress ObservedAttentionPress; H2O's accumulated attention at prefill)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Press
from .registry import register


@register
@dataclass(frozen=True)
class ObservedAttention(Press):
    name = "observed_attention"
    kvpress_class = "ObservedAttentionPress"
    summary = "Keeps the keys that received the most attention while the context was read (as H2O)."
    methods = ("Observed attention, as kvpress's ObservedAttentionPress (related to H2O, "
               "[Zhang et al., 2023](https://arxiv.org/abs/2306.14048)): the attention each key received from the "
               "context's queries, divided by how many queries could see it, averaged over a KV head's query heads.")

    def score(self, view):
        c = view.context
        scores = view.attention().sum(1) / torch.arange(c, 0, -1, dtype=torch.float32)  # (q_heads, C)
        return scores.view(view.keys.shape[0], view.group, c).mean(1)
