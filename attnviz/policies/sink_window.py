"""``sink_window`` (StreamingLLM, Xiao et al. 2023): the first S positions
("attention sinks") plus the K-S most recent keys.

A query with at most K allowed keys keeps them all.  With a ratio budget a
row keeps ``min(S, k_i - 1)`` sinks, so it always keeps at least itself.
For encoders: the first S positions plus the K-S nearest.
"""

from dataclasses import dataclass, field

import torch

from ..budget import BudgetError
from .base import Policy, keep_top, nearness
from .registry import register


@register
@dataclass(frozen=True)
class SinkWindow(Policy):
    name = "sink_window"
    summary = "A sliding window plus the first S tokens (attention sinks), as in StreamingLLM."
    methods = ("StreamingLLM ([Xiao et al., 2023](https://arxiv.org/abs/2309.17453)): the first S tokens "
               "(\"attention sinks\", which soak up attention a query has nowhere else to put) plus the K−S "
               "most recent. Without the sinks a window collapses; with them it recovers.")
    scores_all_pairs = False
    fills_counts = True
    evicts = True

    sinks: int = field(default=4, metadata={"min": 0, "label": "S",
                                            "help": "the first S tokens (attention sinks) are always kept"})

    @property
    def min_keys(self) -> int:
        return self.sinks + 1  # room for at least one recent key

    def validate(self, budget, causal):
        super().validate(budget, causal)
        for k in budget.key_sizes():
            if k <= self.sinks:
                raise BudgetError(
                    f"policy 'sink_window' needs more keys than sinks (K={k} <= S={self.sinks}): "
                    "no room would be left for recent tokens"
                )

    def keep(self, scores, allowed, budget, view):
        memo_key = (budget, tuple(allowed.shape), allowed.data_ptr())
        if memo_key not in view.memo:  # the same in every layer of a call
            _, q_len, k_len = allowed.shape
            counts = view.counts  # (h, q)
            n_sinks = torch.clamp(counts - 1, max=self.sinks).clamp_min(0)
            order_from_start = torch.cumsum(allowed.long(), dim=-1)  # 1 for the first allowed key
            sinks = allowed & (order_from_start <= n_sinks.unsqueeze(-1))
            recent = keep_top(nearness(q_len, k_len), allowed & ~sinks, counts - n_sinks)
            view.memo[memo_key] = sinks | recent
        return view.memo[memo_key]

    def decode_victim(self, positions, acc, new_position, budget, size):
        """Before a new key joins a full cache: drop the oldest key that is not a sink."""
        non_sink = torch.where(positions >= self.sinks, positions, torch.iinfo(positions.dtype).max)
        return non_sink.argmin(dim=-1)
