"""The per-call state of one budgeted forward pass.

A :class:`BudgetRun` travels with a single ``model(...)`` call (as the
``attnviz=`` keyword, which transformers forwards to every attention layer),
never through module-level state: one cached model serves many users at once,
each call carrying its own budgets.  It holds one :class:`Budget` per batch
row (a sweep runs several budgets in one batched pass), applies their policies
layer by layer, and accumulates what the metrics need.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch

from .budget import Budget, keep_counts
from .kernel import attention_scores, masked_softmax, mix_values
from .policies import LayerView, Policy

__all__ = ["BudgetRun", "RowStats", "Segment"]

_ASK = object()  # BudgetRun._budget_row: "ask the policy for its keep mask"


@dataclass
class RowStats:
    """Counts for one batch row, summed over layers and query heads.

    ``kept_pairs``/``allowed_pairs``/``scored_pairs`` count query-key pairs;
    ``mass_sum``/``mass_rows`` give the mean share of the pre-mask softmax the
    kept keys hold; ``kv_keys`` the cached keys at the last position, summed
    over layers and KV heads.
    """

    kept_pairs: int = 0
    allowed_pairs: int = 0
    scored_pairs: int = 0
    mass_sum: float = 0.0
    mass_rows: int = 0
    kv_keys: int = 0

    def add_full_rows(self, pairs: int, rows: int) -> None:
        """Count rows known to keep every allowed key without running them (a shared prefix)."""
        self.kept_pairs += pairs
        self.allowed_pairs += pairs
        self.scored_pairs += pairs
        self.mass_sum += rows
        self.mass_rows += rows

    @property
    def mass_kept(self) -> float:
        return self.mass_sum / self.mass_rows if self.mass_rows else 1.0


@dataclass(frozen=True)
class Segment:
    """One budget's share of a packed pass (see :class:`BudgetRun`).

    Its ``length`` new tokens sit at ``start..start+length-1`` of the packed
    sequence and continue a causal text whose first ``prefix`` tokens are not
    recomputed: their keys and values come from ``BudgetRun.prefix_kv``.
    """

    start: int
    length: int
    prefix: int


@dataclass
class BudgetRun:
    """Budgets for one forward call, plus what it measured.

    Args:
        budgets: one per batch row (a single budget is applied to every row).
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
        self.budgets = list(self.budgets)
        self.policies = [b.policy for b in self.budgets]
        for p, b in zip(self.policies, self.budgets, strict=True):
            p.validate(b, self.causal)
        self.stats = [RowStats() for _ in self.budgets]
        if self.capture is not None and self.capture != "all":
            self.capture = frozenset(self.capture)
        if self.segments is not None:
            self.segments = list(self.segments)
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

    def _captures(self, layer: int) -> bool:
        return self.capture == "all" or (self.capture is not None and layer in self.capture)

    def attend(
        self,
        layer: int,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        allowed: torch.Tensor | None,
        scaling: float,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One layer's attention under the budgets; shapes as :func:`attnviz.kernel.attend`.

        ``allowed`` is the model's own bool mask ``(batch, 1, q, k)`` or None (all keys).
        In a packed run (``segments``) the mask is ignored (each segment is
        causal on its own) and no weights are returned (captured ones are kept
        in ``weights``, one row per segment).
        """
        if self.segments is not None:
            return self._attend_packed(layer, query, key, value, scaling), None
        batch, hq, lq, _ = query.shape
        hkv, lk = key.shape[1], key.shape[2]
        if len(self.budgets) == 1 and batch > 1:
            self.budgets, self.policies = self.budgets * batch, self.policies * batch
            self.stats += [RowStats() for _ in range(batch - 1)]
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
            w, keep = self._budget_row(b, layer, scores[b], allowed=allowed[b], hkv=hkv)
            weights.append(w)
            keeps.append(keep)
        weights = torch.stack(weights) if batch > 1 else weights[0].unsqueeze(0)
        capture = self._captures(layer)
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

    def _attend_packed(self, layer: int, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                       scaling: float) -> torch.Tensor:
        """Each segment attends to its prefix (from ``prefix_kv``) and to its own new tokens, causally.

        Queries go in blocks of :data:`QUERY_BLOCK`, each against the keys up to
        its last query only: the causal mask would throw the later keys' scores away.
        """
        outs = []
        hkv = key.shape[1]
        query = query * scaling  # once for the whole packed sequence, not per block
        if self.prefix_kv is None:  # the first segment is the full run: its keys are everyone's prefix
            n = self.segments[0].length
            self.kv[layer] = (key[:, :, :n].clone(), value[:, :, :n].clone())
            self.queries[layer] = query[:, :, :n].clone()
        grab = _Captured(self, layer, query.shape[1]) if self._captures(layer) else None
        decided = self._decide_whole(layer, query, key, hkv)
        for b, seg in enumerate(self.segments):
            new = slice(seg.start, seg.start + seg.length)
            q, k, v = query[:, :, new], key[:, :, new], value[:, :, new]
            if seg.prefix:
                pk, pv = self.kv[layer] if self.prefix_kv is None else self.prefix_kv[layer]
                k = torch.cat([pk[:, :, :seg.prefix], k], dim=2)
                v = torch.cat([pv[:, :, :seg.prefix], v], dim=2)
            step = QUERY_BLOCK if self.policies[b].rowwise else seg.length
            for lo in range(0, seg.length, step):
                hi = min(lo + step, seg.length)
                end = seg.prefix + hi  # keys 0..end-1 are all the block's queries may see
                allowed = self._causal(hi - lo, end)
                if b in decided:  # the whole text's rows: this segment's are the last seg.length
                    scores, keep = decided[b]
                    scores, keep = scores[:, seg.prefix:], keep if keep is None else keep[..., seg.prefix:, :]
                else:
                    scores, keep = attention_scores(q[:, :, lo:hi], k[:, :, :end], 1.0)[0], _ASK
                weights, keep = self._budget_row(b, layer, scores, keep, allowed=allowed, hkv=hkv,
                                                 last=hi == seg.length)
                if grab is not None:
                    grab.rows(b, seg.prefix + lo, weights, allowed if keep is None else keep)
                outs.append(mix_values(weights.unsqueeze(0), v[:, :, :end]))
        if grab is not None:
            grab.store()
        return torch.cat(outs, dim=2)

    def _decide_whole(self, layer: int, query: torch.Tensor, key: torch.Tensor, hkv: int
                      ) -> dict[int, tuple[torch.Tensor, torch.Tensor | None]]:
        """Scores ``(q_heads, n, n)`` of the whole text and keep masks of the segments whose policy
        is not rowwise (``h2o``: a query's keys depend on the earlier queries' attention).

        A segment's prefix rows (not recomputed: they keep every key) are scored with the
        full run's queries.  Segments of one policy decide together (its ``keep_many``: one
        loop over queries serves them all) while their scores fit in :data:`TOGETHER_BYTES`.
        """
        groups: dict[Policy, list[int]] = {}
        for b, pol in enumerate(self.policies):
            if not pol.rowwise:
                groups.setdefault(pol, []).append(b)  # one policy with one set of parameters
        decided = {}
        hq = query.shape[1]
        for members in groups.values():
            n = self.segments[members[0]].prefix + self.segments[members[0]].length  # every segment: the whole text
            allowed = self._causal(n, n)
            bias = self._mask_facts(allowed, query.dtype).bias
            per = max(1, TOGETHER_BYTES // (hq * n * n * query.element_size()))
            for lo in range(0, len(members), per):
                part = members[lo:lo + per]
                scores = torch.stack([self._whole_scores(b, layer, query, key) for b in part])
                if bias is not None:
                    scores.add_(bias)  # policies see -inf where forbidden
                view = LayerView(layer=layer, causal=self.causal, group=hq // hkv, memo=self.policy_memo(part[0]))
                keeps = self.policies[part[0]].keep_many(scores, allowed,
                                                         [self.budgets[b].for_layer(layer) for b in part], view)
                decided.update({b: (scores[i], keeps[i]) for i, b in enumerate(part)})
        return decided

    def _whole_scores(self, b: int, layer: int, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """Scores ``(q_heads, n, n)`` of segment ``b`` over the whole text (``query`` already scaled)."""
        seg = self.segments[b]
        new = slice(seg.start, seg.start + seg.length)
        k = key[:, :, new]
        if not seg.prefix:
            return attention_scores(query[:, :, new], k, 1.0)[0]
        pk = (self.kv[layer] if self.prefix_kv is None else self.prefix_kv[layer])[0]
        pq = (self.queries if self.prefix_kv is None else self.prefix_queries)[layer]
        k = torch.cat([pk[:, :, :seg.prefix], k], dim=2)
        rows = torch.cat([pq[:, :, :seg.prefix], query[:, :, new]], dim=2)
        return attention_scores(rows, k, 1.0)[0]

    def policy_memo(self, b: int) -> dict:
        """The memo of row ``b``'s policy: one namespace per policy class, shared by its budgets and layers."""
        return self.memo.setdefault(("policy", type(self.policies[b])), {})

    def _view(self, b: int, layer: int, allowed: torch.Tensor, group: int) -> LayerView:
        """What row ``b``'s policy may know about ``layer``, with the keys each row may keep (``counts``)."""
        budget = self.budgets[b].for_layer(layer)
        return LayerView(layer=layer, causal=self.causal, group=group, memo=self.policy_memo(b),
                         count_rows=lambda: self._counts(budget, allowed))

    def _counts(self, budget: Budget, allowed: torch.Tensor) -> torch.Tensor:
        """Keys per row ``(heads or 1, q)`` under ``allowed`` ``(1, q, k)``: the budget's size made into counts
        (the same in every layer and for every policy of one size, so memoised for the call)."""
        key = ("counts", budget.keys, budget.ratio, allowed.data_ptr(), tuple(allowed.shape))
        if key not in self.memo:
            self.memo[key] = keep_counts(allowed.sum(-1), budget)
        return self.memo[key]

    def _causal(self, q_len: int, k_len: int) -> torch.Tensor:
        """bool ``(1, q_len, k_len)``: the last ``q_len`` positions of a causal text of ``k_len``, memoised."""
        key = ("causal", q_len, k_len)
        if key not in self.memo:
            self.memo[key] = torch.ones(q_len, k_len, dtype=torch.bool).tril(k_len - q_len).unsqueeze(0)
        return self.memo[key]

    def _mask_facts(self, allowed: torch.Tensor, dtype: torch.dtype) -> _MaskFacts:
        """Facts about one sequence's mask ``(1, q, k)``, memoised for the call (every layer shares its mask)."""
        key = ("facts", allowed.data_ptr(), tuple(allowed.shape), tuple(allowed.stride()), dtype)
        if key not in self.memo:
            rows = allowed.sum(-1)  # (1, q)
            bias = None
            if not bool(allowed.all()):
                bias = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, float("-inf"))
            self.memo[key] = _MaskFacts(bias=bias, pairs=int(rows.sum()), live_rows=int((rows > 0).sum()),
                                        last_keys=int(allowed[0, -1].sum()), empty_rows=bool((rows == 0).any()))
        return self.memo[key]

    def _budget_row(self, b: int, layer: int, scores: torch.Tensor, keep: torch.Tensor | None | object = _ASK, *,
                    allowed: torch.Tensor, hkv: int, last: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Weights ``(q_heads, q, k)`` of one sequence under its budget, and its keep mask (None: every allowed key).

        ``scores`` ``(q_heads, q, k)`` are overwritten (forbidden keys set to -inf).
        ``keep``: the policy's mask if already decided (see :meth:`_decide_whole`), else asked here.
        Updates the row's :class:`RowStats`; ``last`` says the rows end the
        sequence (the KV cache is counted at its last query).
        """
        policy, budget, stat = self.policies[b], self.budgets[b], self.stats[b]
        hq = scores.shape[0]
        facts = self._mask_facts(allowed, scores.dtype)
        # One softmax over the allowed keys serves the budget: its weights are the
        # same numbers renormalised over its kept keys, and the mass they hold
        # before renormalising is exactly the "mass kept" statistic.
        if facts.bias is not None:
            scores.add_(facts.bias)  # a no-op on scores already masked (-inf + -inf)
        weights = torch.softmax(scores, dim=-1)
        if facts.empty_rows:  # exp(-inf - -inf) = NaN on rows with no allowed key: zeros, as SDPA gives
            weights = torch.nan_to_num_(weights, nan=0.0)
        if keep is _ASK:
            keep = policy.keep(scores, allowed, budget.for_layer(layer), self._view(b, layer, allowed, hq // hkv))
        n_allowed = facts.pairs * hq
        stat.allowed_pairs += n_allowed
        stat.mass_rows += facts.live_rows * hq
        if keep is None:
            stat.kept_pairs += n_allowed
            stat.scored_pairs += n_allowed
            stat.mass_sum += facts.live_rows * hq
            stat.kv_keys += facts.last_keys * hkv if last else 0
            return weights, None
        if facts.bias is not None:
            keep = keep & allowed  # a policy's contract, enforced: never a key the model forbids
        if not policy.fills_counts:
            keep = _best_key_for_empty_rows(keep, scores, allowed)
        kept_w = weights.mul_(keep.to(weights.dtype))  # an explicit cast: mul_ by a bool tensor is 3x slower
        mass = kept_w.sum(-1, keepdim=True)
        stat.mass_sum += float(mass.sum())
        # Renormalise; rows whose kept mass underflows are recomputed exactly.
        kept_w.div_(mass.clamp_min(1e-30))
        tiny = mass < 1e-6
        if bool(tiny.any()):
            keep = keep.expand_as(scores)
            rows = tiny.squeeze(-1) & keep.any(-1)
            kept_w[rows] = masked_softmax(scores[rows], keep[rows])
        n_kept = int(torch.count_nonzero(keep)) * (hq // keep.shape[0])
        stat.kept_pairs += n_kept
        stat.scored_pairs += n_allowed if policy.scores_all_pairs else n_kept
        if last and policy.evicts:
            final = keep[:, -1, :].expand(hq, -1)
            stat.kv_keys += int(final.reshape(hkv, hq // hkv, -1).any(dim=1).sum())
        elif last:
            stat.kv_keys += facts.last_keys * hkv
        return kept_w, keep


def _best_key_for_empty_rows(keep: torch.Tensor, scores: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """``keep`` with each row that kept no key but may see one given its best-scoring allowed key.

    A softmax over no key has no value to return; a plug-in's rule may leave a row empty
    (every other key: row 0 with only odd keys), so the engine decides that row, and
    the key counts in the density like any other.  ``scores`` ``(q_heads, q, k)`` are -inf where forbidden.
    """
    need = ~keep.any(-1) & allowed.any(-1)  # (heads or 1, q)
    if not bool(need.any()):
        return keep
    keep = keep.expand(scores.shape[0], -1, -1).clone()
    best = scores.argmax(-1, keepdim=True)
    keep.scatter_(-1, best, keep.gather(-1, best) | need.expand(scores.shape[0], -1).unsqueeze(-1))
    return keep


class _Captured:
    """One layer's captured weights and keep masks of a packed run: ``(segments, q_heads, n, n)`` each.

    A segment's prefix rows keep every key (that is why they were not recomputed),
    so they are the full run's weights (``prefix_weights``) with a causal keep mask.
    """

    def __init__(self, run: BudgetRun, layer: int, q_heads: int):
        self.run, self.layer = run, layer
        n = run.segments[0].prefix + run.segments[0].length
        self.weights = torch.zeros(len(run.segments), q_heads, n, n, dtype=torch.float16)
        self.keep = torch.zeros(len(run.segments), q_heads, n, n, dtype=torch.bool)
        for b, seg in enumerate(run.segments):
            p = seg.prefix
            if p:
                self.weights[b, :, :p, :p] = run.prefix_weights[layer][:, :p, :p]
                self.keep[b, :, :p, :p] = run._causal(p, p)[0]

    def rows(self, b: int, first: int, weights: torch.Tensor, keep: torch.Tensor) -> None:
        """Rows ``first..`` of segment ``b``: ``weights`` ``(q_heads, q, k)`` and a keep mask broadcastable to it."""
        q, k = weights.shape[-2:]
        self.weights[b, :, first:first + q, :k] = weights
        self.keep[b, :, first:first + q, :k] = keep

    def store(self) -> None:
        self.run.weights[self.layer] = self.weights
        self.run.keep_masks[self.layer] = self.keep


TOGETHER_BYTES = 64 * 2**20
"""At most this many bytes of scores for segments decided together (see :meth:`BudgetRun._decide_whole`)."""

QUERY_BLOCK = 128
"""Queries per block in a packed pass (see :meth:`BudgetRun._attend_packed`)."""


@dataclass(frozen=True)
class _MaskFacts:
    """``bias``: 0 where allowed, -inf where forbidden ``(1, q, k)`` (None if all allowed); the rest per head."""

    bias: torch.Tensor | None
    pairs: int
    live_rows: int
    last_keys: int
    empty_rows: bool
