"""``window``: per query, its K most recent keys (itself included).

For encoders (no causal mask) the K nearest positions, ties broken toward the
earlier position.  Needs no scores and evicts for good: a causal model only
ever needs the last K keys, so the KV cache really shrinks.
"""

from .base import Policy, keep_top, nearness, row_counts


class Window(Policy):
    name = "window"
    summary = "Each query sees only its K most recent tokens (a sliding window)."
    scores_all_pairs = False
    evicts = True

    def keep(self, scores, allowed, budget, view):
        memo_key = ("window", budget, tuple(allowed.shape), allowed.data_ptr())
        if memo_key not in view.memo:
            _, q_len, k_len = allowed.shape
            view.memo[memo_key] = keep_top(nearness(q_len, k_len), allowed, row_counts(allowed, budget))
        return view.memo[memo_key]

    def decode_victim(self, positions, acc, new_position, budget, size):
        """Before a new key joins a full cache: drop the oldest key (per KV head, ``(kv_heads,)`` slots)."""
        return positions.argmin(dim=-1)
