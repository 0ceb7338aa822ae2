"""``topk``: per (layer, query head, query), the keys with the highest scores.

An oracle: it must compute every score before it can choose, so it saves no
score FLOPs and no KV memory, only mixing work.
"""

from .base import Policy, keep_top, row_counts


class TopK(Policy):
    name = "topk"
    summary = "Each query keeps its K highest-scoring keys (an oracle: it must score every key first)."

    def keep(self, scores, allowed, budget, view):
        memo_key = ("topk_counts", budget, allowed.data_ptr(), tuple(allowed.shape))
        if memo_key not in view.memo:  # the same for every layer (and every head) of a call
            view.memo[memo_key] = row_counts(allowed, budget)
        return keep_top(scores, allowed, view.memo[memo_key], masked=True)
