"""``random``: per (layer, query head, query), a uniformly random set of allowed
keys of the same size ``topk`` would keep -- the control that shows whether a
policy beats chance.  Reproducible through its ``seed``.

The draw for a (layer, head, query position, key position) is a hash of those
numbers and the seed, not a stream of random numbers, so a query's choice is
the same whether it runs alone, in a batch, or after a reused prefix.
"""

from dataclasses import dataclass, field

import torch

from .base import Policy, keep_top
from .registry import register

_MASK = (1 << 62) - 1


def _mix(x: torch.Tensor) -> torch.Tensor:
    """A splitmix64-style integer hash, kept within 62 bits so int64 never overflows into sign games."""
    x = ((x ^ (x >> 31)) * 0x3C79AC492BA7B653) & _MASK
    x = ((x ^ (x >> 29)) * 0x1C69B3F74AC4AE35) & _MASK
    return x ^ (x >> 32)


def uniform_draws(seed: int, layer: int, heads: int, q_len: int, k_len: int) -> torch.Tensor:
    """Pseudo-random values in [0, 1), ``(heads, q_len, k_len)``, for queries at the last ``q_len`` key positions."""
    h = torch.arange(heads, dtype=torch.int64).view(-1, 1, 1)
    q = torch.arange(k_len - q_len, k_len, dtype=torch.int64).view(1, -1, 1)
    k = torch.arange(k_len, dtype=torch.int64).view(1, 1, -1)
    x = _mix(torch.tensor(((seed & 0xFFFFFFF) << 20) ^ (layer << 8), dtype=torch.int64) + h)
    x = _mix((x + (q << 24)) & _MASK)
    x = _mix((x + k) & _MASK)
    return (x & ((1 << 52) - 1)).double() / float(1 << 52)


MEMO_BYTES = 32 * 2**20
"""Draws of one layer up to this size are made once per call and shared by its query blocks and budgets."""


def _layer_draws(memo: dict, seed: int, layer: int, heads: int, q_len: int, k_len: int) -> torch.Tensor:
    """:func:`uniform_draws` ``(heads, q_len, k_len)``, sliced from the layer's whole square when it is memoised.

    A sweep asks for the same layer's draws once per budget and query block: the
    hash is the costly part, and its values do not depend on who asks.
    """
    if q_len > k_len or heads * k_len * k_len * 8 > MEMO_BYTES:  # (more queries than keys: not a text's rows)
        return uniform_draws(seed, layer, heads, q_len, k_len)
    key = ("random_draws", seed, heads)
    have = memo.get(key)
    if have is None or have[0] != layer or have[1].shape[-1] < k_len:  # one layer at a time: memory stays flat
        memo[key] = have = (layer, uniform_draws(seed, layer, heads, k_len, k_len))
    return have[1][:, k_len - q_len:k_len, :k_len]


@register
@dataclass(frozen=True)
class RandomKeys(Policy):
    name = "random"
    summary = "Each query keeps K keys chosen at random: the baseline a good policy must beat."
    methods = ("K allowed keys chosen uniformly at random (reproducible with a seed): the control. A policy that "
               "does not beat it has learned nothing about attention.")
    scores_all_pairs = False
    fills_counts = True

    seed: int = field(default=0, metadata={"min": 0, "help": "the same seed draws the same keys"})

    def keep(self, scores, allowed, budget, view):
        heads, q_len, k_len = scores.shape
        draws = _layer_draws(view.memo, self.seed, view.layer, heads, q_len, k_len)
        return keep_top(draws, allowed, view.counts)
