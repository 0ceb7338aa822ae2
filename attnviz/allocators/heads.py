"""``heads`` (Ada-KV, Feng et al. 2024): a layer's heads pool their keys, row by row.

Within a layer and a query row, the ``H·K_row`` keys with the highest attention
probability (under the full softmax) across all ``H`` query heads are kept,
where ``K_row`` is the row's uniform count; each head is first guaranteed its
own best ``⌈α·K_row⌉`` keys, inside that total.  A head's count is how many of
the chosen keys are its own; the policy then chooses which keys fill it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..policies.base import keep_top
from .base import Allocator
from .registry import register


def pooled_counts(base: torch.Tensor, probs: torch.Tensor, allowed: torch.Tensor, alpha: float) -> torch.Tensor:
    """Per-head counts ``(H, q)`` after pooling each row's ``Σ_h base`` keys across heads.

    ``base`` ``(heads or 1, q)`` uniform counts, ``probs`` ``(H, q, k)``, ``allowed`` bool ``(1, q, k)``.
    """
    h, q, k = probs.shape
    base = base.expand(h, q)
    floor = torch.ceil(alpha * base.double() - 1e-9).long().clamp(min=0)
    floor = torch.minimum(floor, base)
    mask = allowed.expand(h, q, k)
    values = probs.masked_fill(~mask, -1.0)
    guaranteed = keep_top(values, mask, floor) if int(floor.max()) > 0 else torch.zeros_like(mask)
    values = torch.where(guaranteed, 2.0, values)  # above every probability: chosen first
    pooled = values.permute(1, 0, 2).reshape(1, q, h * k)
    chosen = keep_top(pooled, mask.permute(1, 0, 2).reshape(1, q, h * k), base.sum(0, keepdim=True))
    return chosen.view(q, h, k).sum(-1).T.contiguous()


@register
@dataclass(frozen=True)
class Heads(Allocator):
    name = "heads"
    summary = "A layer's heads pool their keys: each query's best keys across all heads win (Ada-KV)."
    methods = ("Ada-KV ([Feng et al., 2024](https://arxiv.org/abs/2407.11550)), per query head: in each layer and "
               "query row, the H·K keys with the highest attention probability across all H heads are kept, each "
               "head first guaranteed its best ⌈α·K⌉. It reads every probability, so it scores every pair. "
               "(kvpress's AdaKV pools KV heads for a cache; this pools attention per query head.)")
    dynamic = True
    reads_probabilities = True
    alpha: float = field(default=0.2, metadata={"min": 0.0, "max": 1.0, "label": "α",
                                                "help": "share of its K that each head is guaranteed first"})

    def layer_counts(self, base, probs, allowed, budget):
        return pooled_counts(base, probs, allowed, self.alpha)

    def exact_prefix(self, budget, n_tokens, policy_prefix):
        return min(policy_prefix, int(budget.keys))  # a row with at most K keys: every head keeps them all
