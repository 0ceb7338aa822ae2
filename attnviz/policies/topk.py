"""``topk``: per (layer, query head, query), the keys with the highest scores.

An oracle: it must compute every score before it can choose, so it saves no
score FLOPs and no KV memory, only mixing work.
"""

from .base import Policy, keep_top, row_counts


class TopK(Policy):
    name = "topk"
    summary = "Each query keeps its K highest-scoring keys (an oracle: it must score every key first)."

    def keep(self, scores, allowed, budget, view):
        return keep_top(scores, allowed, row_counts(allowed, budget), masked=True)
