"""The demand curve: how many query-key pairs the full run would keep at each price.

For a price ``τ`` (an attention probability) and a floor ``F`` (each row first
keeps its ``F`` best keys), a row keeps ``|top-F ∪ {p ≥ τ}|`` keys.  Summed over
every layer, head and row that is::

    kept(τ, F) = Σ_rows min(F, |A_i|) + N(p ≥ τ) − Σ_{r<F} N_r(p ≥ τ)

where ``N`` counts all allowed pairs and ``N_r`` those of rank ``r`` in their
row.  :class:`Demand` holds both as histograms of ``log10 p`` (interpolated
inside a bin), collected from the full run's probabilities, so a price is
found by bisection without another forward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Demand", "DemandBuilder", "demand_of_reference", "LOG_MIN", "BINS", "RANKS"]

LOG_MIN = -12.0
"""The lowest price counted, as log10 p: smaller probabilities are below every sensible price."""

BINS = 720
"""Histogram bins over [LOG_MIN, 0] (60 per decade: 4% apart in p; counts are interpolated inside a bin)."""

RANKS = 32
"""Row ranks whose probabilities are kept apart by default: floors up to this many keys are exact, and a
larger floor makes the demand again with more ranks (:func:`demand_of_reference`)."""


@dataclass
class Demand:
    """Histograms of the full run's attention probabilities, over every layer, query head and row.

    ``edges`` ``(BINS+1,)`` log10 p; ``at_least`` ``(layers, BINS+1)`` allowed pairs with log10 p at least
    each edge, per layer; ``rank_at_least`` ``(RANKS, BINS+1)`` the same for pairs of each rank in their
    row (0 = the row's most attended key), over all layers; ``floor_pairs`` ``(RANKS+1,)`` the pairs
    ``Σ min(F, |A_i|)`` a floor of ``F`` keeps; ``pairs`` every allowed pair.  Floors up to ``ranks`` are exact.
    """

    edges: np.ndarray
    at_least: np.ndarray
    rank_at_least: np.ndarray
    floor_pairs: np.ndarray
    pairs: int

    @property
    def ranks(self) -> int:
        return self.rank_at_least.shape[0]

    def _count(self, table: np.ndarray, log_tau: float) -> np.ndarray:
        """Pairs with log10 p >= ``log_tau`` from cumulative counts at the edges (last axis), interpolated."""
        x = min(max(log_tau, LOG_MIN), 0.0)
        step = self.edges[1] - self.edges[0]
        j = min(int((x - LOG_MIN) / step), BINS - 1)
        frac = (self.edges[j + 1] - x) / step  # share of bin j above x, if its pairs spread evenly in log p
        return table[..., j + 1] + frac * (table[..., j] - table[..., j + 1])

    def kept(self, tau: float, floor: int) -> float:
        """Pairs the full run keeps at price ``tau`` with a floor of ``floor`` keys per row (over all layers).

        ValueError for a floor above :attr:`ranks` (make the demand with more ranks)."""
        if floor > self.ranks:
            raise ValueError(f"this demand keeps {self.ranks} ranks apart, not a floor of {floor}")
        x = math.log10(tau) if tau > 0 else LOG_MIN
        above = float(self._count(self.at_least, x).sum())
        ranked = float(self._count(self.rank_at_least[:floor], x).sum()) if floor else 0.0
        return float(self.floor_pairs[floor]) + above - ranked

    def layer_share(self, tau: float) -> np.ndarray:
        """Per layer ``(layers,)``: the share of its allowed pairs with probability at least ``tau`` (no floor)."""
        x = math.log10(tau) if tau > 0 else LOG_MIN
        per_layer = self.pairs / self.at_least.shape[0]
        return self._count(self.at_least, x) / per_layer

    def price_for(self, target: float, floor: int) -> float:
        """The price ``τ`` at which the full run keeps ``target`` pairs (bisection on log10 τ).

        At most 1.0 (only the floor) when even the floor alone spends more; at least ``10**LOG_MIN``.
        """
        lo, hi = LOG_MIN, 0.0  # kept() falls as the price rises
        if self.kept(1.0, floor) >= target:
            return 1.0
        if self.kept(10 ** LOG_MIN, floor) <= target:
            return 10 ** LOG_MIN
        for _ in range(60):
            mid = (lo + hi) / 2
            if self.kept(10 ** mid, floor) > target:
                lo = mid
            else:
                hi = mid
        return float(10 ** ((lo + hi) / 2))


class DemandBuilder:
    """Collects a :class:`Demand` layer by layer from full-attention probabilities."""

    def __init__(self, layers: int, ranks: int = RANKS):
        self.ranks = ranks
        self.edges = np.linspace(LOG_MIN, 0.0, BINS + 1)
        self.hist = np.zeros((layers, BINS), dtype=np.int64)
        self.rank_hist = np.zeros((ranks, BINS), dtype=np.int64)
        self.floor_pairs = np.zeros(ranks + 1, dtype=np.int64)
        self.pairs = 0

    def add(self, layer: int, probs: torch.Tensor, allowed: torch.Tensor) -> None:
        """One layer: ``probs`` ``(q_heads, q, k)`` full softmax (0 where forbidden), ``allowed`` bool ``(1, q, k)``."""
        h = probs.shape[0]
        # log10 p of forbidden (p = 0) or tiny pairs falls below LOG_MIN, outside the histogram's range.
        logp = torch.log10(probs.float().clamp_min(1e-30))
        self.hist[layer] += torch.histc(logp, bins=BINS, min=LOG_MIN, max=0.0).long().numpy()
        ranks = min(self.ranks, probs.shape[-1])
        top = torch.topk(logp, ranks, dim=-1, sorted=True).values  # (h, q, ranks)
        # The bin of each value by histc's own arithmetic (the last edge, p = 1, in the last bin); values below
        # LOG_MIN go to one extra slot that is dropped.  No search and no boolean gather: a fifth of the time.
        where = ((top - LOG_MIN) * (BINS / -LOG_MIN)).long().clamp_(max=BINS - 1)
        flat = where + (torch.arange(ranks) * BINS)
        flat.masked_fill_(top < LOG_MIN, ranks * BINS)
        counts = torch.bincount(flat.reshape(-1), minlength=ranks * BINS + 1)[:-1]
        self.rank_hist[:ranks] += counts.view(ranks, BINS).numpy()
        row_keys = allowed.sum(-1).reshape(-1)  # (q,)
        f = torch.arange(self.ranks + 1).view(-1, 1)
        self.floor_pairs += (torch.minimum(f, row_keys.view(1, -1)).sum(-1) * h).numpy()
        self.pairs += int(row_keys.sum()) * h

    def build(self) -> Demand:
        at_least = np.concatenate([np.cumsum(self.hist[:, ::-1], axis=1)[:, ::-1],
                                   np.zeros((self.hist.shape[0], 1), dtype=np.int64)], axis=1)
        rank_at_least = np.concatenate([np.cumsum(self.rank_hist[:, ::-1], axis=1)[:, ::-1],
                                        np.zeros((self.ranks, 1), dtype=np.int64)], axis=1)
        return Demand(edges=self.edges, at_least=at_least.astype(np.float64),
                      rank_at_least=rank_at_least.astype(np.float64), floor_pairs=self.floor_pairs, pairs=self.pairs)


def demand_of_reference(ref, floor: int = 0) -> Demand:
    """The :class:`Demand` of a causal model's :class:`~attnviz.measure.reference.Reference`, from its kept
    queries and keys (attention scores again, no forward); memoised on ``ref``, made again with more ranks
    when a ``floor`` above its ranks is asked for."""
    got = getattr(ref, "_demand", None)
    if got is not None and got.ranks >= floor:
        return got
    ranks = max(RANKS, floor) if got is None else max(floor, 2 * got.ranks)
    from ..engine.kernel import attention_scores

    if ref.queries is None or ref.kv is None:
        raise ValueError("the demand curve needs a causal model's reference made for budgets (queries and keys)")
    n = ref.n_tokens
    allowed = torch.ones(n, n, dtype=torch.bool).tril().unsqueeze(0)
    builder = DemandBuilder(len(ref.kv), ranks)
    with torch.inference_mode():
        for layer, (query, (key, _)) in enumerate(zip(ref.queries, ref.kv, strict=True)):
            scores = attention_scores(query, key, 1.0)[0].masked_fill_(~allowed, float("-inf"))
            builder.add(layer, torch.softmax(scores, dim=-1), allowed)
    ref._demand = builder.build()
    return ref._demand
