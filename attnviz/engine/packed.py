"""The packed runner: several budgets' new tokens in one sequence, attention kept per budget.

The linear layers see one long sequence (large, efficient matrix products);
attention runs per :class:`Segment`, over its prefix (the full run's keys and
values, which those rows would have computed anyway) plus its own new tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..policies import LayerView, Policy
from .kernel import attention_scores, mix_values

if TYPE_CHECKING:
    from .run import BudgetRun

__all__ = ["Segment", "attend_packed", "QUERY_BLOCK", "TOGETHER_BYTES"]

QUERY_BLOCK = 128
"""Queries per block in a packed pass (see :func:`attend_packed`)."""

TOGETHER_BYTES = 64 * 2**20
"""At most this many bytes of scores for segments decided together (see :func:`decide_whole`)."""


@dataclass(frozen=True)
class Segment:
    """One budget's share of a packed pass.

    Its ``length`` new tokens sit at ``start..start+length-1`` of the packed
    sequence and continue a causal text whose first ``prefix`` tokens are not
    recomputed: their keys and values come from ``BudgetRun.prefix_kv``.
    """

    start: int
    length: int
    prefix: int


def attend_packed(run: BudgetRun, layer: int, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                  scaling: float) -> torch.Tensor:
    """Each segment attends to its prefix (from ``prefix_kv``) and to its own new tokens, causally.

    Queries go in blocks of :data:`QUERY_BLOCK`, each against the keys up to
    its last query only: the causal mask would throw the later keys' scores away.
    Returns the attention output ``(1, q_heads, packed_len, d_head)``.
    """
    outs = []
    hkv = key.shape[1]
    query = query * scaling  # once for the whole packed sequence, not per block
    if run.prefix_kv is None:  # the first segment is the full run: its keys are everyone's prefix
        n = run.segments[0].length
        run.kv[layer] = (key[:, :, :n].clone(), value[:, :, :n].clone())
        run.queries[layer] = query[:, :, :n].clone()
    grab = _Captured(run, layer, query.shape[1]) if run.captures(layer) else None
    decided = decide_whole(run, layer, query, key, hkv)
    for b, seg in enumerate(run.segments):
        new = slice(seg.start, seg.start + seg.length)
        q, k, v = query[:, :, new], key[:, :, new], value[:, :, new]
        if seg.prefix:
            pk, pv = run.kv[layer] if run.prefix_kv is None else run.prefix_kv[layer]
            k = torch.cat([pk[:, :, :seg.prefix], k], dim=2)
            v = torch.cat([pv[:, :, :seg.prefix], v], dim=2)
        step = QUERY_BLOCK if run.policies[b].rowwise else seg.length
        for lo in range(0, seg.length, step):
            hi = min(lo + step, seg.length)
            end = seg.prefix + hi  # keys 0..end-1 are all the block's queries may see
            allowed = run.causal_mask(hi - lo, end)
            if b in decided:  # the whole text's rows: this segment's are the last seg.length
                scores, keep = decided[b]
                scores, keep = scores[:, seg.prefix:], keep if keep is None else keep[..., seg.prefix:, :]
                weights, keep = run.apply(b, layer, scores, allowed, hkv, keep=keep, decided=True,
                                          last=hi == seg.length)
            else:
                scores = attention_scores(q[:, :, lo:hi], k[:, :, :end], 1.0)[0]
                weights, keep = run.apply(b, layer, scores, allowed, hkv, last=hi == seg.length)
            if grab is not None:
                grab.rows(b, seg.prefix + lo, weights, allowed if keep is None else keep)
            outs.append(mix_values(weights.unsqueeze(0), v[:, :, :end]))
    if grab is not None:
        grab.store()
    return torch.cat(outs, dim=2)


def decide_whole(run: BudgetRun, layer: int, query: torch.Tensor, key: torch.Tensor, hkv: int
                 ) -> dict[int, tuple[torch.Tensor, torch.Tensor | None]]:
    """Scores ``(q_heads, n, n)`` of the whole text and keep masks of the segments whose policy
    is not rowwise (``h2o``: a query's keys depend on the earlier queries' attention).

    A segment's prefix rows (not recomputed: they keep every key) are scored with the
    full run's queries.  Segments of one policy decide together (its ``keep_many``: one
    loop over queries serves them all) while their scores fit in :data:`TOGETHER_BYTES`.
    """
    groups: dict[Policy, list[int]] = {}
    for b, pol in enumerate(run.policies):
        if not pol.rowwise:
            groups.setdefault(pol, []).append(b)  # one policy with one set of parameters
    decided = {}
    hq = query.shape[1]
    for members in groups.values():
        n = run.segments[members[0]].prefix + run.segments[members[0]].length  # every segment: the whole text
        allowed = run.causal_mask(n, n)
        bias = run.mask_facts(allowed, query.dtype).bias
        per = max(1, TOGETHER_BYTES // (hq * n * n * query.element_size()))
        for lo in range(0, len(members), per):
            part = members[lo:lo + per]
            scores = torch.stack([_whole_scores(run, b, layer, query, key) for b in part])
            if bias is not None:
                scores.add_(bias)  # policies see -inf where forbidden
            view = LayerView(layer=layer, causal=run.causal, group=hq // hkv, memo=run.policy_memo(part[0]))
            keeps = run.policies[part[0]].keep_many(scores, allowed, [run.budgets[b].for_layer(layer) for b in part],
                                                    view)
            decided.update({b: (scores[i], keeps[i]) for i, b in enumerate(part)})
    return decided


def _whole_scores(run: BudgetRun, b: int, layer: int, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """Scores ``(q_heads, n, n)`` of segment ``b`` over the whole text (``query`` already scaled)."""
    seg = run.segments[b]
    new = slice(seg.start, seg.start + seg.length)
    k = key[:, :, new]
    if not seg.prefix:
        return attention_scores(query[:, :, new], k, 1.0)[0]
    pk = (run.kv[layer] if run.prefix_kv is None else run.prefix_kv[layer])[0]
    pq = (run.queries if run.prefix_kv is None else run.prefix_queries)[layer]
    k = torch.cat([pk[:, :, :seg.prefix], k], dim=2)
    rows = torch.cat([pq[:, :, :seg.prefix], query[:, :, new]], dim=2)
    return attention_scores(rows, k, 1.0)[0]


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
                self.keep[b, :, :p, :p] = run.causal_mask(p, p)[0]

    def rows(self, b: int, first: int, weights: torch.Tensor, keep: torch.Tensor) -> None:
        """Rows ``first..`` of segment ``b``: ``weights`` ``(q_heads, q, k)`` and a keep mask broadcastable to it."""
        q, k = weights.shape[-2:]
        self.weights[b, :, first:first + q, :k] = weights
        self.keep[b, :, first:first + q, :k] = keep

    def store(self) -> None:
        self.run.weights[self.layer] = self.weights
        self.run.keep_masks[self.layer] = self.keep
