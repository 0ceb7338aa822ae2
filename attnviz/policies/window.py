"""``window``: per query, its K most recent keys (itself included).

For encoders (no causal mask) the K nearest positions, ties broken toward the
earlier position.  Needs no scores and evicts for good: a causal model only
ever needs the last K keys, so the KV cache really shrinks.
"""

from dataclasses import dataclass

from .base import Policy, keep_top, nearness
from .registry import register


@register
@dataclass(frozen=True)
class Window(Policy):
    name = "window"
    summary = "Each query sees only its K most recent tokens (a sliding window)."
    methods = ("Sliding-window attention ([Child et al., 2019](https://arxiv.org/abs/1904.10509); "
               "[Beltagy et al., 2020](https://arxiv.org/abs/2004.05150)): the K most recent keys (encoders: the K "
               "nearest, ties to the earlier one).")
    scores_all_pairs = False
    fills_counts = True
    evicts = True

    def keep(self, scores, allowed, budget, view):
        memo_key = (budget, tuple(allowed.shape), allowed.data_ptr())
        if memo_key not in view.memo:  # the same in every layer of a call
            _, q_len, k_len = allowed.shape
            view.memo[memo_key] = keep_top(nearness(q_len, k_len), allowed, view.counts)
        return view.memo[memo_key]

    def decode_victim(self, positions, acc, new_position, budget, size):
        """Before a new key joins a full cache: drop the oldest key (per KV head, ``(kv_heads,)`` slots)."""
        return positions.argmin(dim=-1)
