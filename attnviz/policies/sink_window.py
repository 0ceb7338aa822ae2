"""``sink_window`` (StreamingLLM, Xiao et al. 2023): the first S positions
("attention sinks") plus the K-S most recent keys.

A query with at most K allowed keys keeps them all.  With a ratio budget a
row keeps ``min(S, k_i - 1)`` sinks, so it always keeps at least itself.
For encoders: the first S positions plus the K-S nearest.
"""

import torch

from ..budget import BudgetError
from .base import Policy, keep_top, nearness, row_counts


class SinkWindow(Policy):
    name = "sink_window"
    summary = "A sliding window plus the first S tokens (attention sinks), as in StreamingLLM."
    scores_all_pairs = False
    evicts = True

    def validate(self, budget, causal):
        super().validate(budget, causal)
        if budget.sinks < 0:
            raise BudgetError(f"policy 'sink_window' needs sinks S >= 0, got {budget.sinks}")
        for k in budget.key_sizes():
            if k <= budget.sinks:
                raise BudgetError(
                    f"policy 'sink_window' needs more keys than sinks (K={k} <= S={budget.sinks}): "
                    "no room would be left for recent tokens"
                )

    def keep(self, scores, allowed, budget, view):
        memo_key = ("sink_window", budget, tuple(allowed.shape), allowed.data_ptr())
        if memo_key not in view.memo:
            _, q_len, k_len = allowed.shape
            counts = row_counts(allowed, budget)  # (h, q)
            n_sinks = torch.clamp(counts - 1, max=budget.sinks).clamp_min(0)
            order_from_start = torch.cumsum(allowed.long(), dim=-1)  # 1 for the first allowed key
            sinks = allowed & (order_from_start <= n_sinks.unsqueeze(-1))
            recent = keep_top(nearness(q_len, k_len), allowed & ~sinks, counts - n_sinks)
            view.memo[memo_key] = sinks | recent
        return view.memo[memo_key]

    def decode_victim(self, positions, acc, new_position, budget, size):
        """Before a new key joins a full cache: drop the oldest key that is not a sink."""
        non_sink = torch.where(positions >= budget.sinks, positions, torch.iinfo(positions.dtype).max)
        return non_sink.argmin(dim=-1)
