"""The shared machinery every policy builds on.

A policy (in the spirit of NVIDIA kvpress's "presses") is a frozen dataclass
whose fields are its parameters, and it has one job: given one layer's
attention scores for one sequence, say which keys each query keeps.
Everything else -- how many keys a row may keep, the softmax over the kept
keys, statistics, FLOP and memory accounting -- is shared and lives in
:mod:`attnviz.engine.run`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from ..budget import Budget, BudgetError, keep_counts
from ..params import Parametrised, check_values
from .ladders import key_ladder

__all__ = ["Policy", "LayerView", "by_rows", "keep_top", "kth_largest", "nearness", "row_counts"]


@dataclass
class LayerView:
    """What a policy may know about the layer it is deciding for.

    ``causal`` is the model's own masking; ``group`` the number of query heads
    sharing one KV head; ``memo`` a per-call dict of this policy's own, to reuse
    work across layers and budgets (e.g. a window mask that is the same in every
    layer).  ``counts`` ``(heads or 1, q_len)``: how many keys each row may keep,
    decided by the engine from the budget's size (see :func:`row_counts`).
    """

    layer: int
    causal: bool
    group: int
    memo: dict = field(default_factory=dict)
    count_rows: Callable[[], torch.Tensor] | None = None
    _counts: torch.Tensor | None = field(default=None, repr=False)

    @property
    def counts(self) -> torch.Tensor:
        """int64 ``(heads or 1, q_len)`` keys per row, made on first use (many policies never ask)."""
        if self._counts is None:
            if self.count_rows is None:
                raise ValueError("this LayerView was made without counts (see LayerView.for_budget)")
            self._counts = self.count_rows()
        return self._counts

    def set_counts(self, counts: torch.Tensor) -> None:
        """Replace the counts (an allocator's, decided from the layer's own attention)."""
        self._counts = counts

    @classmethod
    def for_budget(cls, layer: int, causal: bool, group: int, allowed: torch.Tensor, budget: Budget,
                   memo: dict | None = None) -> LayerView:
        """A view whose ``counts`` are the uniform counts of ``budget`` under ``allowed`` ``(1, q, k)``."""
        return cls(layer=layer, causal=causal, group=group, memo={} if memo is None else memo,
                   count_rows=lambda: row_counts(allowed, budget.for_layer(layer)))


@dataclass(frozen=True)
class Policy(Parametrised):
    """Base class: subclasses are frozen dataclasses (their fields are their parameters), set the class
    attributes and implement :meth:`keep`.

    Class attributes:
        name: registry name (``--policy NAME``).
        summary: one plain-language line for the app and ``--help``.
        methods: a paragraph (markdown) for the Methods page: what it does and where it comes from.
        reference: True only for ``full``, the model as trained that every budget is compared to.
        scores_all_pairs: True for "oracle" policies that must score every
            allowed pair before choosing (their score FLOPs are not saved).
        fills_counts: True if :meth:`keep` keeps exactly ``view.counts`` keys per row: then a
            row with at most ``K`` keys keeps all of them, and a sweep reuses the full run for
            those rows (:meth:`exact_prefix`), and no row is ever left empty.
        keeps_every_row: True if :meth:`keep` never leaves a row that may see a key without one
            (implied by ``fills_counts``): the engine then skips looking for empty rows.
        evicts: True if a dropped key is never needed again, so the KV cache
            really shrinks (window-like and eviction policies); decoding then
            keeps a cache of :meth:`cache_size` keys and asks :meth:`decode_victim`.
        decode_needs_attention: an evicting policy whose victims depend on the
            attention each cached key received (``h2o``).
        causal_only: True if the policy only makes sense left-to-right.
        ratio_only: True if the budget must be a ratio (``topp``'s mass p).
        ratio_symbol: how a ratio size is labelled (``R``; ``p`` for a mass).
        rowwise: True if a query's keep set depends only on its own row of
            scores and position (so rows may be decided in blocks); False for
            policies that carry state from query to query (``h2o``).
        default_keys, default_ratio: the size a page starts at.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    methods: ClassVar[str] = ""
    reference: ClassVar[bool] = False
    scores_all_pairs: ClassVar[bool] = True
    fills_counts: ClassVar[bool] = False
    keeps_every_row: ClassVar[bool] = False
    evicts: ClassVar[bool] = False
    decode_needs_attention: ClassVar[bool] = False
    causal_only: ClassVar[bool] = False
    ratio_only: ClassVar[bool] = False
    ratio_symbol: ClassVar[str] = "R"
    rowwise: ClassVar[bool] = True
    default_keys: ClassVar[int | None] = 16
    default_ratio: ClassVar[float] = 0.25

    @property
    def min_keys(self) -> int:
        """The smallest sensible key count (``sink_window``: one more than its sinks)."""
        return 1

    # ------------------------------------------------------------------ validation

    def validate(self, budget: Budget, causal: bool) -> None:
        """Raise :class:`BudgetError` (naming the policy and the reason) if unfit.

        Checks the parameters' ranges (from their metadata), the size, and the
        model's masking; a policy with more rules extends this (call ``super()``).
        """
        check_values(f"policy '{self.name}'", self)
        if self.reference:
            return
        if self.causal_only and not causal:
            raise BudgetError(
                f"policy '{self.name}' needs a causal (left-to-right) model: it simulates a KV cache "
                "that grows token by token, which an encoder does not have"
            )
        if self.ratio_only and (budget.keys is not None or budget.layer_keys is not None):
            raise BudgetError(f"policy '{self.name}' takes a probability mass p in (0, 1] (--budget), not a key count")
        budget.check_size()

    # ------------------------------------------------------------------ what the engine asks

    def exact_prefix(self, budget: Budget, n_tokens: int) -> int:
        """How many leading queries of a causal, unpadded text of ``n_tokens`` surely keep every key.

        Those rows (and, in a causal model, their hidden states in every layer)
        equal the full run, so a sweep reuses the full run's KV cache for them
        instead of recomputing.  Row 0 sees one key, which every policy keeps (an
        empty row gets its best key).  A policy that :attr:`fills_counts` keeps rows
        ``0..K-1`` whole under a key count ``K``.  A policy that is not :attr:`rowwise`
        also needs those rows' attention to decide later ones: it resumes only where
        the full run's queries are at hand (``BudgetRun.prefix_queries``).
        """
        if self.reference:
            return n_tokens
        sizes = budget.key_sizes() if self.fills_counts else []
        return min(min(sizes) if sizes else 1, n_tokens)

    def keep(self, scores: torch.Tensor, allowed: torch.Tensor, budget: Budget, view: LayerView) -> torch.Tensor | None:
        """Keep mask for one sequence of one layer.

        Args:
            scores: scaled scores ``(q_heads, q_len, k_len)``, -inf where ``allowed``
                is False (as :class:`~attnviz.engine.run.BudgetRun` passes them).
            allowed: bool ``(1, q_len, k_len)``, the model's own mask.
            budget: the budget for this layer.
            view: layer facts, with ``view.counts`` the keys each row may keep.

        Returns:
            bool mask broadcastable to ``(q_heads, q_len, k_len)``, a subset of
            ``allowed``; or None for "every allowed key".  A row left with no key
            gets its best-scoring allowed key from the engine.
        """
        raise NotImplementedError

    def keep_many(self, scores: torch.Tensor, allowed: torch.Tensor, budgets: list[Budget], view: LayerView
                  ) -> list[torch.Tensor | None] | torch.Tensor:
        """Keep masks of several texts of the same length at once, one budget each.

        ``scores`` ``(B, q_heads, n, n)`` (-inf where ``allowed`` is False); ``view`` has no
        counts (they differ per budget).  The default asks :meth:`keep` per text; a whole-text
        policy whose decisions loop over queries (``h2o``) overrides it so one loop serves every
        text (a packed sweep uses it).
        """
        views = [LayerView.for_budget(view.layer, view.causal, view.group, allowed, b, view.memo) for b in budgets]
        return [self.keep(s, allowed, b, v) for s, b, v in zip(scores, budgets, views, strict=True)]

    # ------------------------------------------------------------------ sizes a sweep tries

    def ladder(self, n_tokens: int, count: int = 8) -> list[Budget]:
        """The budgets a frontier tries on a text of ``n_tokens``: ``count`` key counts from n/32 to 3n/4."""
        if self.reference:
            return [Budget(self)]
        return [Budget(self, keys=k) for k in key_ladder(n_tokens, count, self.min_keys)]

    # ------------------------------------------------------------------ decoding (evicting policies)

    def cache_size(self, budget: Budget, n_tokens: int) -> int:
        """The fixed KV cache size in keys for a prompt of ``n_tokens`` (a ratio ``R``: ``ceil(R * n)``)."""
        if budget.ratio is not None:
            return max(1, math.ceil(budget.ratio * n_tokens - 1e-9))
        return int(budget.keys)

    def prompt_cache(self, budget: Budget, n_tokens: int, kv_heads: int, view: LayerView
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """After reading a prompt of ``n_tokens``: which keys each KV head keeps in its cache, and their
        scores for later evictions (``decode_victim``'s ``acc``): bool and float ``(kv_heads, n_tokens)``.

        The default keeps what the prompt's last query keeps (asked with zero scores: for policies
        that choose by position).  ``view.memo`` is this policy's memo of the prompt's pass.
        """
        allowed = torch.ones(1, 1, n_tokens, dtype=torch.bool)
        view = LayerView.for_budget(view.layer, True, view.group, allowed, budget, view.memo)
        keep = self.keep(torch.zeros(1, 1, n_tokens), allowed, budget, view)
        last = (allowed if keep is None else keep)[0].expand(kv_heads, n_tokens)
        return last, torch.zeros(kv_heads, n_tokens)

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

    numpy's introselect (``np.partition``) beats ``torch.topk`` here (benchmarks/README.md),
    and a sweep spends much of its attention time in this selection.
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
