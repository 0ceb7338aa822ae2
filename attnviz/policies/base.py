"""The shared machinery every policy builds on.

A policy (in the spirit of NVIDIA kvpress's "presses") has one job: given one
layer's attention scores for one sequence, say which keys each query keeps.
Everything else -- the softmax over the kept keys, statistics, FLOP and memory
accounting -- is shared and lives in :mod:`attnviz.budget_context`.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from ..budget import Budget, BudgetError, keep_counts

__all__ = ["Policy", "LayerView", "by_rows", "keep_top", "kth_largest", "nearness", "row_counts"]


@dataclass
class LayerView:
    """What a policy may know about the layer it is deciding for.

    ``causal`` is the model's own masking; ``group`` the number of query heads
    sharing one KV head; ``memo`` a per-call dict a policy may use to reuse work
    across layers (e.g. a window mask that is the same in every layer).
    """

    layer: int
    causal: bool
    group: int
    memo: dict = field(default_factory=dict)


class Policy:
    """Base class: subclasses set the class attributes and implement :meth:`keep`.

    Class attributes:
        name: registry name (``--policy NAME``).
        summary: one plain-language line for the app and ``--help``.
        scores_all_pairs: True for "oracle" policies that must score every
            allowed pair before choosing (their score FLOPs are not saved).
        evicts: True if a dropped key is never needed again, so the KV cache
            really shrinks (window-like and eviction policies).
        causal_only: True if the policy only makes sense left-to-right.
        ratio_only: True if the budget must be a ratio (``topp``'s mass p).
        rowwise: True if a query's keep set depends only on its own row of
            scores and position (so rows may be decided in blocks); False for
            policies that carry state from query to query (``h2o``).
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    scores_all_pairs: ClassVar[bool] = True
    evicts: ClassVar[bool] = False
    causal_only: ClassVar[bool] = False
    ratio_only: ClassVar[bool] = False
    rowwise: ClassVar[bool] = True

    def validate(self, budget: Budget, causal: bool) -> None:
        """Raise :class:`BudgetError` (naming the policy and the reason) if unfit."""
        if self.causal_only and not causal:
            raise BudgetError(
                f"policy '{self.name}' needs a causal (left-to-right) model: it simulates a KV cache "
                "that grows token by token, which an encoder does not have"
            )
        if self.ratio_only and (budget.keys is not None or budget.layer_keys is not None):
            raise BudgetError(f"policy '{self.name}' takes a probability mass p in (0, 1] (--budget), not a key count")
        budget.check_size()

    def exact_prefix(self, budget: Budget, n_tokens: int) -> int:
        """How many leading queries of a causal, unpadded text of ``n_tokens`` surely keep every key.

        Query ``i`` sees ``i + 1`` keys, so with a key count ``K`` rows ``0..K-1``
        are untouched; any policy keeps row 0's single key.  Those rows (and, in
        a causal model, their hidden states in every layer) equal the full run,
        so a sweep can reuse the full run's KV cache for them instead of
        recomputing.  A policy that is not :attr:`rowwise` (``h2o``) also needs
        those rows' attention to decide the later ones: it resumes only where
        the full run's queries are at hand (``BudgetRun.prefix_queries``).
        """
        sizes = budget.key_sizes()
        return min(min(sizes) if sizes else 1, n_tokens)

    def keep(self, scores: torch.Tensor, allowed: torch.Tensor, budget: Budget, view: LayerView) -> torch.Tensor | None:
        """Keep mask for one sequence of one layer.

        Args:
            scores: scaled scores ``(q_heads, q_len, k_len)``, -inf where ``allowed``
                is False (as :class:`~attnviz.budget_context.BudgetRun` passes them).
            allowed: bool ``(1, q_len, k_len)``, the model's own mask.
            budget: the budget for this layer.
            view: layer facts.

        Returns:
            bool mask broadcastable to ``(q_heads, q_len, k_len)``, a subset of
            ``allowed``; or None for "every allowed key".
        """
        raise NotImplementedError

    def keep_many(self, scores: torch.Tensor, allowed: torch.Tensor, budgets: list[Budget], view: LayerView
                  ) -> list[torch.Tensor | None] | torch.Tensor:
        """Keep masks of several texts of the same length at once, one budget each.

        ``scores`` ``(B, q_heads, n, n)`` (-inf where ``allowed`` is False). The default asks
        :meth:`keep` per text; a whole-text policy whose decisions loop over queries (``h2o``)
        overrides it so one loop serves every text (a packed sweep uses it).
        """
        return [self.keep(s, allowed, b, view) for s, b in zip(scores, budgets, strict=True)]

    def decode_victim(self, positions: torch.Tensor, acc: torch.Tensor, new_position: int, budget: Budget,
                      size: int) -> torch.Tensor:
        """Evicting policies only: the cache slot each KV head drops before a new key joins a full cache.

        Args:
            positions: ``(kv_heads, size)`` token positions of the cached keys (cache order).
            acc: ``(kv_heads, size)`` attention each cached key has received so far.
            new_position: the position of the key about to join.
            budget: the budget; ``size`` the cache size in keys.

        Returns:
            ``(kv_heads,)`` slot indices.
        """
        raise NotImplementedError(f"policy '{self.name}' does not evict keys while decoding")


def row_counts(allowed: torch.Tensor, budget: Budget) -> torch.Tensor:
    """Per-row keep counts ``(heads, q_len)`` for an ``allowed`` mask ``(1, q_len, k_len)``."""
    return keep_counts(allowed.sum(-1), budget)


def keep_top(values: torch.Tensor, allowed: torch.Tensor, counts: torch.Tensor, masked: bool = False) -> torch.Tensor:
    """Per row, keep the ``counts`` allowed keys with the highest ``values``.

    ``values`` ``(h, q, k)`` (h may be 1), ``allowed`` bool broadcastable to it,
    ``counts`` ``(h or 1, q)`` with ``counts <= allowed per row``.  ``masked``
    says ``values`` are already -inf where ``allowed`` is False (saves a copy).
    """
    h = max(values.shape[0], counts.shape[0])
    vals = (values if masked else values.masked_fill(~allowed, float("-inf"))).expand(h, -1, -1)
    kmax = int(counts.max()) if counts.numel() else 0
    if kmax == 0:
        return torch.zeros(vals.shape, dtype=torch.bool)
    counts = counts.expand(h, -1)
    if bool(((counts == kmax) | (counts == allowed.sum(-1))).all()):
        # Every row keeps kmax keys or all of its allowed keys (a key count K does
        # this): the kmax-th largest value per row is a threshold, which is much
        # cheaper than scattering sorted indices.  Rows with fewer than kmax
        # allowed keys get the lowest finite threshold (every allowed key).
        threshold = kth_largest(vals, kmax).clamp_min(torch.finfo(vals.dtype).min)
        keep = vals >= threshold
        # A threshold keeps at least the counted keys per row, more only on a tie:
        # equal totals mean every row is exact.
        if int(torch.count_nonzero(keep)) == int(counts.sum()):
            return keep
    idx = torch.topk(vals, kmax, dim=-1, sorted=True).indices
    chosen = torch.arange(kmax).view(1, 1, -1) < counts.unsqueeze(-1)
    return torch.zeros(vals.shape, dtype=torch.bool).scatter_(-1, idx, chosen)


def kth_largest(values: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k``-th largest entry along the last axis, shape ``(..., 1)`` (``1 <= k <= values.shape[-1]``).

    numpy's introselect (``np.partition``) on one core is about twice as fast
    as ``torch.topk`` on two, and a sweep spends much of its attention time here.
    """
    n = values.shape[-1]
    chosen = by_rows(lambda rows: np.partition(rows, n - k, axis=-1)[:, n - k], values.numpy())
    return torch.from_numpy(chosen).view(*values.shape[:-1], 1)


def by_rows(fn, values: np.ndarray) -> np.ndarray:
    """``fn`` applied to the rows of ``values`` ``(..., k)`` seen as ``(rows, k)``, split over
    :func:`torch.get_num_threads` threads when large (numpy releases the GIL while it sorts).

    ``fn`` maps ``(r, k)`` to ``(r, ...)``; the result keeps ``values``' leading shape.
    """
    lead = values.shape[:-1]
    flat = values.reshape(-1, values.shape[-1])
    threads = torch.get_num_threads()
    if threads > 1 and flat.size >= _SPLIT_ABOVE:
        out = np.concatenate(list(_pool(threads).map(fn, np.array_split(flat, threads))))
    else:
        out = fn(flat)
    return out.reshape(*lead, *out.shape[1:])


_SPLIT_ABOVE = 1 << 16  # entries; below this, handing rows to threads costs more than it saves


@functools.cache
def _pool(threads: int) -> ThreadPoolExecutor:
    """One shared pool per thread count (it holds no per-request state)."""
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="attnviz-select")


def nearness(q_len: int, k_len: int) -> torch.Tensor:
    """Higher = nearer: ``(1, q_len, k_len)`` ranking of keys by distance to the query.

    Query ``i`` sits at key position ``i + k_len - q_len`` (the end of the keys,
    as in prefill and decoding).  Ties (one before, one after, in encoders) go
    to the earlier key, so the ordering is strict and the keep set exact.
    """
    qpos = torch.arange(q_len).view(-1, 1) + (k_len - q_len)
    kpos = torch.arange(k_len).view(1, -1)
    dist = (qpos - kpos).abs() * 2 + (kpos > qpos).long()
    return (-dist).unsqueeze(0).float()
