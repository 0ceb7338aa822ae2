"""``topk``: per (layer, query head, query), the keys with the highest scores.

An oracle: it must compute every score before it can choose, so it saves no
score FLOPs and no KV memory, only mixing work.
"""

from dataclasses import dataclass

from .base import Policy, keep_top
from .registry import register


@register
@dataclass(frozen=True)
class TopK(Policy):
    name = "topk"
    summary = "Each query keeps its K highest-scoring keys (an oracle: it must score every key first)."
    methods = ("Top-k attention: [Gupta et al., 2021](https://arxiv.org/abs/2106.06899). An *oracle*: it must "
               "compute every score before choosing, so it saves mixing work but not scoring work or memory.")
    fills_counts = True

    def keep(self, scores, allowed, budget, view):
        return keep_top(scores, allowed, view.counts, masked=True)
