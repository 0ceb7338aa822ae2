"""The per-call state of one budgeted forward pass.

A :class:`BudgetRun` travels with a single ``model(...)`` call (as the
``attnviz=`` keyword, which transformers forwards to every attention layer),
never through module-level state: one cached model serves many users at once,
each call carrying its own budgets.  It holds one :class:`Budget` per batch
row (or per packed :class:`~attnviz.engine.packed.Segment`), runs each layer's
attention under them (batched here, packed in :mod:`attnviz.engine.packed`;
each sequence through :func:`~attnviz.engine.apply.apply_budget`), and
accumulates what the metrics need.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch

from ..budget import Budget, keep_counts
from ..policies import LayerView
from .apply import MaskFacts, apply_budget, mask_facts
from .kernel import attention_scores, mix_values
from .packed import Segment, attend_packed
from .stats import RowStats

__all__ = ["BudgetRun", "RowStats", "Segment"]


@dataclass
class BudgetRun:
    """Budgets for one forward call, plus what it measured.

    Args:
        budgets: one per batch row (or per segment of a packed run).
        causal: the model's own masking (policies such as ``h2o`` need it).
        capture: layers whose attention weights to keep (``"all"``, an iterable
            of layer indices, or None).  Kept as float16 ``(q_heads, q, k)`` per
            row; the keep mask too, as bool.
        observers: callables ``observer(layer, weights, keep)`` called once per
            layer with the weights ``(batch, q_heads, q, k)`` (float32, after the
            budget) and the keep mask (bool, same shape, or None if every allowed
            key was kept): a way to summarise every layer (statistics,
            thumbnails, head means for rollout) without storing all weights.
        segments: a *packed* run (causal models only): the batch is one row
            holding several budgets' new tokens one after another, one
            :class:`Segment` per budget.  The linear layers see one long
            sequence (large, efficient matrix products); attention runs per
            segment, over its prefix from ``prefix_kv`` plus its own tokens.
            Pass matching ``position_ids``.  No observers; ``capture`` needs
            ``prefix_weights`` for the rows a segment does not recompute.
        prefix_kv: per layer ``(keys, values)``, each ``(1, kv_heads, n, d_head)``,
            the full run's cache that segments take their prefixes from.  None:
            the first segment *is* the full run of the whole text (policy
            ``full``, no prefix), computed in the same pass; the others take
            their prefixes from its keys and values, which are kept in ``kv``.
        prefix_weights: per captured layer the full run's float16 ``(q_heads, n, n)``
            weights: in a packed run with ``capture`` the rows of a segment's
            prefix (which keep every key, so equal the full run) come from there,
            and each segment's captured weights cover the whole text.
        prefix_queries: per layer the full run's scaled queries ``(1, q_heads, n, d_head)``
            (``scaling * Q`` after rotary embedding): a policy that is not rowwise
            (``h2o``) decides later rows from its prefix rows' attention, which a
            packed segment does not recompute; they are scored from these.
        keep_queries: keep each layer's scaled queries in ``queries`` (a full run
            made to serve as the reference of packed runs).
    """

    budgets: Sequence[Budget]
    causal: bool = True
    capture: str | Iterable[int] | None = None
    observers: Sequence[Callable[[int, torch.Tensor, torch.Tensor | None], None]] = ()
    segments: Sequence[Segment] | None = None
    prefix_kv: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None
    prefix_weights: dict[int, torch.Tensor] | None = None
    prefix_queries: Sequence[torch.Tensor] | None = None
    keep_queries: bool = False
    stats: list[RowStats] = field(init=False)
    weights: dict[int, torch.Tensor] = field(init=False, default_factory=dict)
    kv: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(init=False, default_factory=dict)
    queries: dict[int, torch.Tensor] = field(init=False, default_factory=dict)
    keep_masks: dict[int, torch.Tensor] = field(init=False, default_factory=dict)
    memo: dict = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.budgets = tuple(self.budgets)
        for b in self.budgets:
            b.policy.validate(b, self.causal)
        self.stats = [RowStats() for _ in self.budgets]
        if self.capture is not None and self.capture != "all":
            self.capture = frozenset(self.capture)
        if self.segments is not None:
            self._check_segments()

    def _check_segments(self) -> None:
        self.segments = tuple(self.segments)
        if len(self.segments) != len(self.budgets):
            raise ValueError(f"{len(self.segments)} segments for {len(self.budgets)} budgets")
        if not self.causal or self.observers:
            raise ValueError("a packed run needs a causal model and no observers")
        first = self.segments[0]
        if self.prefix_kv is None and (first.start or first.prefix or not self.policies[0].reference):
            raise ValueError("without prefix_kv the first segment must be the full run of the whole text")
        resumes = any(s.prefix and not p.rowwise for s, p in zip(self.segments, self.policies, strict=True))
        if resumes and self.prefix_kv is not None and self.prefix_queries is None:
            raise ValueError("a packed segment of a policy that is not rowwise resumes after its prefix only "
                             "with prefix_queries")
        if self.capture is not None and any(s.prefix for s in self.segments):
            have = set(self.prefix_weights or ())
            if self.capture == "all" or not self.capture <= have:
                raise ValueError("capture in a packed run needs prefix_weights for every captured layer")

    @property
    def policies(self) -> list:
        """The policy of each budget, in order."""
        return [b.policy for b in self.budgets]

    def captures(self, layer: int) -> bool:
        """Whether ``layer``'s weights and keep masks are kept (``capture``)."""
        return self.capture == "all" or (self.capture is not None and layer in self.capture)

    # ------------------------------------------------------------------ the batched runner

    def attend(
        self,
        layer: int,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        allowed: torch.Tensor | None,
        scaling: float,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One layer's attention under the budgets; shapes as :func:`attnviz.engine.kernel.attend`.

        ``allowed`` is the model's own bool mask ``(batch, 1, q, k)`` or None (all keys).
        In a packed run (``segments``) the mask is ignored (each segment is
        causal on its own) and no weights are returned (captured ones are kept
        in ``weights``, one row per segment).
        """
        if self.segments is not None:
            return attend_packed(self, layer, query, key, value, scaling), None
        batch, hq, lq, _ = query.shape
        hkv, lk = key.shape[1], key.shape[2]
        if len(self.budgets) != batch:
            raise ValueError(f"{len(self.budgets)} budgets for a batch of {batch}")
        if allowed is None:
            if ("all", batch, lq, lk) not in self.memo:
                self.memo["all", batch, lq, lk] = torch.ones(batch, 1, lq, lk, dtype=torch.bool)
            allowed = self.memo["all", batch, lq, lk]
        if self.keep_queries:
            self.queries[layer] = query * scaling
        scores = attention_scores(query, key, scaling)
        weights, keeps = [], []
        for b in range(batch):
            w, keep = self.apply(b, layer, scores[b], allowed[b], hkv)
            weights.append(w)
            keeps.append(keep)
        weights = torch.stack(weights) if batch > 1 else weights[0].unsqueeze(0)
        capture = self.captures(layer)
        some_dropped = any(k is not None for k in keeps)
        keep_all = None
        if capture or (self.observers and some_dropped):
            keep_all = torch.stack([allowed[b].expand(hq, lq, lk) if k is None else k.expand(hq, lq, lk)
                                    for b, k in enumerate(keeps)])
        if capture:
            self.weights[layer] = weights.to(torch.float16)
            self.keep_masks[layer] = keep_all
        for observe in self.observers:
            observe(layer, weights, keep_all if some_dropped else None)
        return mix_values(weights, value), weights

    # ------------------------------------------------------------------ shared by both runners

    def apply(self, b: int, layer: int, scores: torch.Tensor, allowed: torch.Tensor, hkv: int,
              keep: torch.Tensor | None = None, decided: bool = False, last: bool = True
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:func:`~attnviz.engine.apply.apply_budget` for budget ``b``; its counts go to ``stats[b]``."""
        budget = self.budgets[b].for_layer(layer)
        view = self._view(b, layer, allowed, budget, scores.shape[0] // hkv)
        weights, keep, added = apply_budget(scores, allowed, self.mask_facts(allowed, scores.dtype), budget.policy,
                                            budget, view, hkv, keep=keep, decided=decided, last=last)
        self.stats[b].add(added, layer)
        return weights, keep

    def policy_memo(self, b: int) -> dict:
        """The memo of budget ``b``'s policy: one namespace per policy class, shared by its budgets and layers."""
        return self.memo.setdefault(("policy", type(self.budgets[b].policy)), {})

    def _view(self, b: int, layer: int, allowed: torch.Tensor, budget: Budget, group: int) -> LayerView:
        """What budget ``b``'s policy may know about ``layer``, with the keys each row may keep (``counts``)."""
        # A dynamic allocator's counts differ from layer to layer: a policy's memo must not carry them over.
        memo = {} if budget.allocator.dynamic else self.policy_memo(b)
        return LayerView(layer=layer, causal=self.causal, group=group, memo=memo,
                         count_rows=lambda: self._counts(budget, allowed))

    def _counts(self, budget: Budget, allowed: torch.Tensor) -> torch.Tensor:
        """Keys per row ``(heads or 1, q)`` under ``allowed`` ``(1, q, k)``: the budget's size made into counts
        (the same in every layer and for every policy of one size, so memoised for the call)."""
        key = ("counts", budget.keys, budget.ratio, allowed.data_ptr(), tuple(allowed.shape))
        if key not in self.memo:
            self.memo[key] = keep_counts(allowed.sum(-1), budget)
        return self.memo[key]

    def causal_mask(self, q_len: int, k_len: int) -> torch.Tensor:
        """bool ``(1, q_len, k_len)``: the last ``q_len`` positions of a causal text of ``k_len``, memoised."""
        key = ("causal", q_len, k_len)
        if key not in self.memo:
            self.memo[key] = torch.ones(q_len, k_len, dtype=torch.bool).tril(k_len - q_len).unsqueeze(0)
        return self.memo[key]

    def mask_facts(self, allowed: torch.Tensor, dtype: torch.dtype) -> MaskFacts:
        """:func:`~attnviz.engine.apply.mask_facts` of one sequence's mask, memoised for the call (every layer
        shares its mask)."""
        key = ("facts", allowed.data_ptr(), tuple(allowed.shape), tuple(allowed.stride()), dtype)
        if key not in self.memo:
            self.memo[key] = mask_facts(allowed, dtype)
        return self.memo[key]
