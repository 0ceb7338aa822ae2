"""One layer's budget applied to one sequence's scores: weights, keep mask, and what it adds to the counts.

A pure function of its inputs (the runners in :mod:`attnviz.engine.run` and
:mod:`attnviz.engine.packed` memoise the mask facts and build the policy's view).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..budget import Budget, BudgetError
from ..policies import LayerView, Policy
from .kernel import masked_softmax
from .stats import RowStats

__all__ = ["MaskFacts", "mask_facts", "apply_budget"]


@dataclass(frozen=True)
class MaskFacts:
    """Facts about one sequence's mask ``(1, q, k)`` that every layer shares.

    ``bias``: 0 where allowed, -inf where forbidden ``(1, q, k)`` (None if all allowed); ``pairs`` allowed
    pairs, ``live_rows`` rows with a key, ``last_keys`` keys the last row sees, per head.
    """

    bias: torch.Tensor | None
    pairs: int
    live_rows: int
    last_keys: int
    empty_rows: bool


def mask_facts(allowed: torch.Tensor, dtype: torch.dtype) -> MaskFacts:
    """:class:`MaskFacts` of a bool mask ``allowed`` ``(1, q, k)``, its bias in ``dtype``."""
    rows = allowed.sum(-1)  # (1, q)
    bias = None
    if not bool(allowed.all()):
        bias = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, float("-inf"))
    return MaskFacts(bias=bias, pairs=int(rows.sum()), live_rows=int((rows > 0).sum()),
                     last_keys=int(allowed[0, -1].sum()), empty_rows=bool((rows == 0).any()))


def apply_budget(scores: torch.Tensor, allowed: torch.Tensor, facts: MaskFacts, policy: Policy, budget: Budget,
                 view: LayerView, kv_heads: int, keep: torch.Tensor | None = None, decided: bool = False,
                 last: bool = True) -> tuple[torch.Tensor, torch.Tensor | None, RowStats]:
    """Weights ``(q_heads, q, k)`` of one sequence under its layer's budget, its keep mask (None: every allowed
    key), and the counts this layer adds.

    Args:
        scores: scaled scores ``(q_heads, q, k)``; overwritten (forbidden keys set to -inf).
        allowed: the model's own bool mask ``(1, q, k)``; ``facts`` its :func:`mask_facts`.
        policy, budget, view: who decides, with what size, knowing what (``budget`` already for this layer).
        keep, decided: a keep mask the policy already gave for these rows (``decided``; see
            :func:`attnviz.engine.packed.decide_whole`); else the policy is asked here.
        last: the rows end the sequence (the KV cache is counted at its last query).
    """
    hq = scores.shape[0]
    if isinstance(budget.keys, tuple) and len(budget.keys) != hq:  # the budget cannot know the model's heads
        raise BudgetError(f"per-head key counts need one count per query head: got {len(budget.keys)}, "
                          f"the model has {hq}")
    stats = RowStats()
    # One softmax over the allowed keys serves the budget: its weights are the
    # same numbers renormalised over its kept keys, and the mass they hold
    # before renormalising is exactly the "mass kept" statistic.
    if facts.bias is not None:
        scores.add_(facts.bias)  # a no-op on scores already masked (-inf + -inf)
    weights = torch.softmax(scores, dim=-1)
    if facts.empty_rows:  # exp(-inf - -inf) = NaN on rows with no allowed key: zeros, as SDPA gives
        weights = torch.nan_to_num_(weights, nan=0.0)
    allocator = budget.allocator
    if not decided:
        if allocator.dynamic:  # the allocator sets each row's count from this layer's own attention
            view.set_counts(allocator.layer_counts(view.counts, weights, allowed, budget))
        keep = policy.keep(scores, allowed, budget, view)
    n_allowed = facts.pairs * hq
    stats.allowed_pairs = n_allowed
    stats.mass_rows = facts.live_rows * hq
    stats.head_allowed = facts.pairs
    if keep is None:
        stats.kept_pairs = stats.scored_pairs = n_allowed
        stats.head_kept = torch.full((hq,), facts.pairs, dtype=torch.long)
        stats.mass_sum = facts.live_rows * hq
        stats.kv_keys = facts.last_keys * kv_heads if last else 0
        return weights, None, stats
    if facts.bias is not None:
        keep = keep & allowed  # a policy's contract, enforced: never a key the model forbids
    if not (policy.fills_counts or policy.keeps_every_row):  # a plug-in's rule may leave a row empty
        keep = best_key_for_empty_rows(keep, scores, allowed)
    kept_w = weights.mul_(keep.to(weights.dtype))  # an explicit cast: mul_ by a bool tensor is 3x slower
    mass = kept_w.sum(-1, keepdim=True)
    stats.mass_sum = float(mass.sum())
    # Renormalise; rows whose kept mass underflows are recomputed exactly.
    kept_w.div_(mass.clamp_min(1e-30))
    tiny = mass < 1e-6
    if bool(tiny.any()):
        keep = keep.expand_as(scores)
        rows = tiny.squeeze(-1) & keep.any(-1)
        kept_w[rows] = masked_softmax(scores[rows], keep[rows])
    stats.head_kept = keep.sum(dim=(-2, -1)).expand(hq)
    n_kept = int(stats.head_kept.sum())
    stats.kept_pairs = n_kept
    stats.scored_pairs = n_allowed if policy.scores_all_pairs or allocator.reads_probabilities else n_kept
    if last and policy.evicts:
        final = keep[:, -1, :].expand(hq, -1)
        stats.kv_keys = int(final.reshape(kv_heads, hq // kv_heads, -1).any(dim=1).sum())
    elif last:
        stats.kv_keys = facts.last_keys * kv_heads
    return kept_w, keep, stats


def best_key_for_empty_rows(keep: torch.Tensor, scores: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
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
