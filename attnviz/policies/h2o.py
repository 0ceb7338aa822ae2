"""``h2o``: Heavy-Hitter Oracle (Zhang et al. 2023), simulated on a whole text.

Per (layer, KV head) a KV cache of fixed size K.  Key ``i`` joins the cache
just before query ``i`` attends.  Once the cache is full, each new key evicts
one old key: the cache keeps the ``max(1, K // 2)`` most recent keys and fills
the rest with the keys of largest *accumulated attention* -- the sum, over
earlier queries and over the query heads sharing the KV head, of the weights
the key actually received (softmax over the cached keys only).  An evicted key
never returns, and no decision uses a later query's attention.

With a ratio ``R`` the cache size is ``K = ceil(R * n)`` for the whole text
(a cache size, not a per-row ratio, so its density is measured, not set).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..budget import Budget, BudgetError
from .base import Policy


class H2O(Policy):
    name = "h2o"
    summary = "A fixed-size KV cache that keeps recent tokens plus the most-attended 'heavy hitters'."
    scores_all_pairs = False  # a query only ever scores the keys still in its cache
    evicts = True
    causal_only = True
    rowwise = False  # each query's cache depends on the earlier queries' attention

    def validate(self, budget, causal):
        super().validate(budget, causal)
        if budget.layer_keys is not None or isinstance(budget.keys, tuple):
            raise BudgetError("policy 'h2o' takes one cache size for every head (per-head sizes are not supported)")

    def exact_prefix(self, budget):
        return 0  # its cache scores need the prefix queries' own attention

    def keep(self, scores, allowed, budget, view):
        if scores.shape[-2] != scores.shape[-1]:
            raise BudgetError("policy 'h2o' here simulates a whole text at once; decoding keeps its cache in "
                              "attnviz.generate instead")
        n = scores.shape[-1]
        keep, acc = h2o_prefill(scores, allowed, cache_size(budget, n), view.group)
        # The decoding loop continues from the last query's cache and these scores.
        view.memo[("h2o_state", view.layer)] = (acc, keep[::view.group, -1])
        return keep

    def decode_victim(self, positions: torch.Tensor, acc: torch.Tensor, new_position: int, budget: Budget,
                      size: int) -> torch.Tensor:
        """Slot to evict per KV head before key ``new_position`` joins a full cache.

        ``positions``/``acc``: ``(kv_heads, size)`` token positions and accumulated attention of the cached keys.
        """
        recent = max(1, size // 2)
        old = positions <= new_position - recent  # outside the recent window new_position-recent+1..new_position
        return torch.where(old, acc, torch.tensor(float("inf"), dtype=acc.dtype)).argmin(dim=-1)


def cache_size(budget: Budget, n_tokens: int) -> int:
    """The fixed cache size K (in keys) for a text of ``n_tokens``."""
    if budget.ratio is not None:
        return max(1, math.ceil(budget.ratio * n_tokens - 1e-9))
    return int(budget.keys)


def h2o_prefill_keep(scores: torch.Tensor, allowed: torch.Tensor, k: int, group: int) -> torch.Tensor:
    """Keep mask only; see :func:`h2o_prefill`."""
    return h2o_prefill(scores, allowed, k, group)[0]


def h2o_prefill(scores: torch.Tensor, allowed: torch.Tensor, k: int, group: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Simulate the H2O cache over a causal prefill.

    Args:
        scores: scaled scores ``(q_heads, n, n)``.
        allowed: bool ``(1, n, n)``, the causal mask (no padding).
        k: cache size in keys.
        group: query heads per KV head.

    Returns:
        bool keep mask ``(q_heads, n, n)``: row ``i`` is the cache query ``i`` sees;
        and the accumulated attention ``(kv_heads, n)`` after the last query.
    """
    hq, n, _ = scores.shape
    hkv = hq // group
    m = min(k, n)
    causal = allowed[0]
    # The loop below takes one small step per query: in numpy each step costs microseconds, in torch about
    # ten times more (per-op dispatch), and a sweep runs it for every layer of every h2o budget.
    s = scores.detach().view(hkv, group, n, n).numpy()
    keep = np.zeros((hkv, n, n), dtype=bool)
    # Until the cache is full nothing is evicted: rows 0..m-1 see every earlier key.
    keep[:, :m, :m] = causal[:m, :m].numpy()
    first = torch.softmax(scores.view(hkv, group, n, n)[:, :, :m, :m].masked_fill(~causal[:m, :m], float("-inf")),
                          dim=-1)
    acc = np.zeros((hkv, n), dtype=s.dtype)
    acc[:, :m] = first.sum(dim=(1, 2)).numpy()
    in_cache = np.zeros((hkv, n), dtype=bool)
    in_cache[:, :m] = True
    recent = max(1, k // 2)
    heads = np.arange(hkv)
    for i in range(m, n):
        # Heavy-hitter slots hold the cached keys outside the recent window
        # i-recent+1..i; key i-recent just left that window and now competes too.
        # (That part always holds a cached key: the window holds at most K // 2 of the K.)
        lo = i - recent + 1
        victim = np.where(in_cache[:, :lo], acc[:, :lo], np.inf).argmin(axis=-1)
        in_cache[heads, victim] = False
        in_cache[:, i] = True
        keep[:, i] = in_cache
        row = np.where(in_cache[:, None, :i + 1], s[:, :, i, :i + 1], -np.inf)  # keys after i are not cached yet
        e = np.exp(row - row.max(axis=-1, keepdims=True))
        acc[:, :i + 1] += (e / e.sum(axis=-1, keepdims=True)).sum(axis=1)
    keep_t = torch.from_numpy(keep)
    return keep_t.repeat_interleave(group, dim=0), torch.from_numpy(acc)
