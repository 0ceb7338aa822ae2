"""``topp``: per (layer, query head, query), the smallest set of highest-weight
keys whose full-softmax mass reaches ``p`` (nucleus selection over keys).
Among keys of equal weight at the edge of the set, the earlier keys go first."""

from dataclasses import dataclass

import numpy as np
import torch

from ..budget import Budget
from .base import Policy, by_rows
from .ladders import mass_ladder
from .registry import register


@register
@dataclass(frozen=True)
class TopP(Policy):
    name = "topp"
    summary = "Each query keeps its most-attended keys until they hold a share p of its attention."
    methods = ("Nucleus (top-p) selection ([Holtzman et al., 2020](https://arxiv.org/abs/1904.09751)) applied to "
               "keys instead of words: the smallest set of highest-weight keys whose full-softmax weight reaches p "
               "(among equal weights at the edge of the set, the earlier keys).")
    ratio_only = True
    keeps_every_row = True  # the nucleus holds at least the largest weight
    ratio_symbol = "p"
    default_keys = None
    default_ratio = 0.9

    def ladder(self, n_tokens, count=8):
        """Masses p from 0.5 to 0.999 (a key count means nothing to top-p)."""
        return [Budget(self, ratio=p) for p in mass_ladder(count)]

    def keep(self, scores, allowed, budget, view):
        p = budget.ratio
        if p >= 1.0:
            return None
        probs = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
        keep = by_rows(lambda rows: nucleus(rows, p), probs.numpy())
        return torch.from_numpy(keep) & allowed


def nucleus(probs: np.ndarray, p: float) -> np.ndarray:
    """Bool mask ``(rows, k)``: per row the smallest set of largest ``probs`` whose sum reaches ``p``.

    numpy's vectorised sort of the values alone is much faster than ``torch.sort``'s
    values and indices (benchmarks/README.md); the set is then "every weight above the
    edge weight, plus as many keys equal to it as the count needs, earliest first".
    """
    desc = np.sort(probs, axis=-1)[:, ::-1]
    before = np.cumsum(desc, axis=-1) - desc  # a key joins while the mass before it is still below p
    count = (before < p).sum(-1, keepdims=True)  # >= 1: nothing comes before the largest
    edge = np.take_along_axis(desc, count - 1, axis=-1)
    above = probs > edge
    tied = probs == edge
    room = count - above.sum(-1, keepdims=True)
    return above | (tied & (np.cumsum(tied, axis=-1) <= room))
