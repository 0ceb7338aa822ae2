"""``topp``: per (layer, query head, query), the smallest set of highest-weight
keys whose full-softmax mass reaches ``p`` (nucleus selection over keys)."""

import torch

from .base import Policy


class TopP(Policy):
    name = "topp"
    summary = "Each query keeps its most-attended keys until they hold a share p of its attention."
    ratio_only = True

    def keep(self, scores, allowed, budget, view):
        p = budget.ratio
        if p >= 1.0:
            return None
        probs = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
        sorted_p, order = torch.sort(probs, dim=-1, descending=True)
        # A key is in the set while the mass of the keys before it is still below p.
        before = torch.cumsum(sorted_p, dim=-1) - sorted_p
        chosen = before < p
        keep = torch.zeros_like(chosen).scatter_(-1, order, chosen)
        return keep & allowed
