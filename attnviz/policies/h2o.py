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

from dataclasses import dataclass

import numpy as np
import torch

from ..budget import Budget, BudgetError
from .base import Policy
from .registry import register


@register
@dataclass(frozen=True)
class H2O(Policy):
    name = "h2o"
    summary = "A fixed-size KV cache that keeps recent tokens plus the most-attended 'heavy hitters'."
    methods = ("Heavy-Hitter Oracle ([Zhang et al., 2023](https://arxiv.org/abs/2306.14048)): a KV cache of fixed "
               "size K per layer and KV head. It keeps the K/2 most recent keys and fills the rest with the keys "
               "that have received the most attention so far; an evicted key never returns, and no decision uses a "
               "later query's attention. With a ratio R the cache holds ⌈R·n⌉ keys for the whole text.")
    scores_all_pairs = False  # a query only ever scores the keys still in its cache
    evicts = True
    keeps_every_row = True  # a query's own key joins the cache before it attends
    decode_needs_attention = True
    causal_only = True
    rowwise = False  # each query's cache depends on the earlier queries' attention

    def validate(self, budget, causal):
        super().validate(budget, causal)
        if budget.layer_keys is not None or isinstance(budget.keys, tuple):
            raise BudgetError("policy 'h2o' takes one cache size for every head (per-head sizes are not supported)")

    def exact_prefix(self, budget, n_tokens):
        return min(self.cache_size(budget, n_tokens), n_tokens)  # the cache fills up before anything is evicted

    def keep(self, scores, allowed, budget, view):
        if scores.shape[-2] != scores.shape[-1]:
            raise BudgetError("policy 'h2o' here simulates a whole text at once; decoding keeps its cache in "
                              "attnviz.generate instead")
        keep, acc = on_real_tokens(
            lambda s, a: h2o_prefill(s, a, self.cache_size(budget, s.shape[-1]), view.group), scores, allowed)
        # Decoding continues from the last query's cache and these scores (prompt_cache).
        view.memo[("state", view.layer)] = (acc, keep[::view.group, -1])
        return keep

    def keep_many(self, scores, allowed, budgets, view):
        return on_real_tokens(
            lambda s, a: h2o_prefill_many(s, a, [self.cache_size(b, s.shape[-1]) for b in budgets], view.group),
            scores, allowed)[0]

    def prompt_cache(self, budget, n_tokens, kv_heads, view):
        """The prompt's last query's cache and the keys' accumulated attention, as :meth:`keep` left them."""
        acc, last = view.memo[("state", view.layer)]  # (kv_heads, n), bool (kv_heads, n)
        return last, acc

    def decode_victim(self, positions: torch.Tensor, acc: torch.Tensor, new_position: int, budget: Budget,
                      size: int) -> torch.Tensor:
        """Slot to evict per KV head before key ``new_position`` joins a full cache.

        ``positions``/``acc``: ``(kv_heads, size)`` token positions and accumulated attention of the cached keys.
        """
        recent = max(1, size // 2)
        old = positions <= new_position - recent  # outside the recent window new_position-recent+1..new_position
        return torch.where(old, acc, torch.tensor(float("inf"), dtype=acc.dtype)).argmin(dim=-1)


def real_positions(allowed: torch.Tensor) -> torch.Tensor:
    """Positions of the real tokens under ``allowed`` (bool ``(..., n, n)``): every position but padding.

    A padding position is one no query may attend to, or a query that may attend to nothing
    (left or right padding masks both its row and its column).
    """
    seen = allowed.reshape(-1, *allowed.shape[-2:]).any(dim=0)
    return (seen.any(dim=0) & seen.any(dim=1)).nonzero().squeeze(-1)


def on_real_tokens(simulate, scores: torch.Tensor, allowed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``simulate(scores, allowed) -> (keep, acc)`` run on the real tokens alone, padding put back as dropped.

    A padded key must not take a cache slot (nor its NaN weights poison the accumulated attention),
    so the cache is simulated on the text without padding: ``keep`` ``(..., n, n)`` is False in
    padding rows and columns, ``acc`` ``(..., kv_heads, n)`` 0 at padding positions.  ``simulate`` sees
    the text's real length as its scores' last dimension (a ratio sizes the cache by it).
    """
    n = scores.shape[-1]
    real = real_positions(allowed)
    if len(real) == n:
        return simulate(scores, allowed)
    keep_real, acc_real = simulate(scores[..., real, :][..., real], allowed[..., real, :][..., real])
    keep = torch.zeros(scores.shape, dtype=torch.bool)
    keep[..., real[:, None], real] = keep_real
    acc = torch.zeros((*acc_real.shape[:-1], n), dtype=acc_real.dtype)
    acc[..., real] = acc_real
    return keep, acc


def h2o_prefill(scores: torch.Tensor, allowed: torch.Tensor, k: int, group: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Simulate the H2O cache over a causal prefill.

    Args:
        scores: scaled scores ``(q_heads, n, n)``.
        allowed: bool ``(1, n, n)``, the causal mask (no padding: :meth:`H2O.keep` takes it out first).
        k: cache size in keys.
        group: query heads per KV head.

    Returns:
        bool keep mask ``(q_heads, n, n)``: row ``i`` is the cache query ``i`` sees;
        and the accumulated attention ``(kv_heads, n)`` after the last query.
    """
    keep, acc = h2o_prefill_many(scores.unsqueeze(0), allowed, [k], group)
    return keep[0], acc[0]


def h2o_prefill_many(scores: torch.Tensor, allowed: torch.Tensor, ks: list[int], group: int
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`h2o_prefill` for ``B`` texts of the same length at once, cache size ``ks[b]`` for text ``b``.

    ``scores`` ``(B, q_heads, n, n)``; returns keep ``(B, q_heads, n, n)`` and acc ``(B, kv_heads, n)``.
    The loop takes one small step per query: in numpy each step costs microseconds (in torch about ten
    times more, per-op dispatch), and a sweep's h2o budgets share the steps instead of each taking its own.
    """
    nb, hq, n, _ = scores.shape
    hkv = hq // group
    # Texts in order of when their cache fills, so the texts still filling at query i are the last ones
    # and every step works on a leading slice (a view: no copies).
    order = np.argsort(np.minimum(np.asarray(ks), n), kind="stable")
    ks = np.asarray(ks)[order]
    s = scores.detach().reshape(nb, hkv, group, n, n).numpy()[order]
    causal = allowed[0].numpy()
    m = np.minimum(ks, n)  # per text: rows 0..m-1 fill the cache, nothing is evicted yet
    recent = np.maximum(1, ks // 2)
    keep = np.zeros((nb, hkv, n, n), dtype=bool)
    acc = np.zeros((nb, hkv, n), dtype=s.dtype)
    in_cache = np.zeros((nb, hkv, n), dtype=bool)
    for b in range(nb):
        mb = m[b]
        keep[b, :, :mb, :mb] = causal[:mb, :mb]
        first = torch.softmax(torch.from_numpy(s[b, :, :, :mb, :mb]).masked_fill(~allowed[0, :mb, :mb], float("-inf")),
                              dim=-1)
        acc[b, :, :mb] = first.sum(dim=(1, 2)).numpy()
        in_cache[b, :, :mb] = True
    position = np.arange(n)
    rows = np.arange(nb)[:, None]
    heads = np.arange(hkv)[None, :]
    for i in range(int(m[0]), n):
        j = int(np.searchsorted(m, i, side="right"))  # texts 0..j-1 have a full cache by query i
        c, a = in_cache[:j], acc[:j]
        # Heavy-hitter slots hold the cached keys outside the recent window
        # i-recent+1..i; key i-recent just left that window and now competes too.
        # (That part always holds a cached key: the window holds at most K // 2 of the K.)
        outside = position[:i + 1] < (i - recent[:j] + 1)[:, None, None]
        victim = np.where(c[:, :, :i + 1] & outside, a[:, :, :i + 1], np.inf).argmin(axis=-1)
        c[rows[:j], heads, victim] = False
        c[:, :, i] = True
        keep[:j, :, i] = c
        row = np.where(c[:, :, None, :i + 1], s[:j, :, :, i, :i + 1], -np.inf)  # keys after i are not cached yet
        e = np.exp(row - row.max(axis=-1, keepdims=True))
        a[:, :, :i + 1] += (e / e.sum(axis=-1, keepdims=True)).sum(axis=2)
    back = np.argsort(order)
    keep_t = torch.from_numpy(keep[back])
    return keep_t.repeat_interleave(group, dim=1), torch.from_numpy(acc[back])
