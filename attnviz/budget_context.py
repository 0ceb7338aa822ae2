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

from .budget import Budget
from .kernel import attention_scores, masked_softmax, mix_values
from .policies import LayerView, get_policy

__all__ = ["BudgetRun", "RowStats"]


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
    """

    budgets: Sequence[Budget]
    causal: bool = True
    capture: str | Iterable[int] | None = None
    observers: Sequence[Callable[[int, torch.Tensor, torch.Tensor | None], None]] = ()
    stats: list[RowStats] = field(init=False)
    weights: dict[int, torch.Tensor] = field(init=False, default_factory=dict)
    keep_masks: dict[int, torch.Tensor] = field(init=False, default_factory=dict)
    memo: dict = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.budgets = list(self.budgets)
        self.policies = [get_policy(b.policy) for b in self.budgets]
        for p, b in zip(self.policies, self.budgets, strict=True):
            p.validate(b, self.causal)
        self.stats = [RowStats() for _ in self.budgets]
        if self.capture is not None and self.capture != "all":
            self.capture = frozenset(self.capture)

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
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One layer's attention under the budgets; shapes as :func:`attnviz.kernel.attend`.

        ``allowed`` is the model's own bool mask ``(batch, 1, q, k)`` or None (all keys).
        """
        batch, hq, lq, _ = query.shape
        hkv, lk = key.shape[1], key.shape[2]
        if len(self.budgets) == 1 and batch > 1:
            self.budgets, self.policies = self.budgets * batch, self.policies * batch
            self.stats += [RowStats() for _ in range(batch - 1)]
        if len(self.budgets) != batch:
            raise ValueError(f"{len(self.budgets)} budgets for a batch of {batch}")
        if allowed is None:
            allowed = self.memo.setdefault(("all", batch, lq, lk), torch.ones(batch, 1, lq, lk, dtype=torch.bool))
        scores = attention_scores(query, key, scaling)
        view = LayerView(layer=layer, causal=self.causal, group=hq // hkv, memo=self.memo)
        # One softmax over the allowed keys serves every row: a budget's weights are
        # the same numbers renormalised over its kept keys, and the mass they hold
        # before renormalising is exactly the "mass kept" statistic.
        weights = masked_softmax(scores, allowed)
        allowed_rows = allowed.sum(-1)  # (batch, 1, q)
        capture = self._captures(layer) or bool(self.observers)
        keeps = []
        for b, (policy, budget, stat) in enumerate(zip(self.policies, self.budgets, self.stats, strict=True)):
            keep = policy.keep(scores[b], allowed[b], budget.for_layer(layer), view)
            n_allowed = int(allowed_rows[b].sum()) * hq
            live_rows = int((allowed_rows[b] > 0).sum()) * hq
            stat.allowed_pairs += n_allowed
            stat.mass_rows += live_rows
            if keep is None:
                stat.kept_pairs += n_allowed
                stat.scored_pairs += n_allowed
                stat.mass_sum += live_rows
                stat.kv_keys += int(allowed[b, 0, -1].sum()) * hkv
                keeps.append(allowed[b].expand(hq, lq, lk) if capture else None)
                continue
            keep = (keep & allowed[b]).expand(hq, lq, lk)
            kept_w = weights[b].mul_(keep)
            mass = kept_w.sum(-1, keepdim=True)
            stat.mass_sum += float(mass.sum())
            # Renormalise; rows whose kept mass underflows are recomputed exactly.
            tiny = (mass < 1e-6) & keep.any(-1, keepdim=True)
            kept_w.div_(mass.clamp_min(1e-30))
            if bool(tiny.any()):
                rows = tiny.squeeze(-1)
                kept_w[rows] = masked_softmax(scores[b][rows], keep[rows])
            n_kept = int(keep.sum())
            stat.kept_pairs += n_kept
            stat.scored_pairs += n_allowed if policy.scores_all_pairs else n_kept
            if policy.evicts:
                stat.kv_keys += int(keep[:, -1, :].reshape(hkv, hq // hkv, lk).any(dim=1).sum())
            else:
                stat.kv_keys += int(allowed[b, 0, -1].sum()) * hkv
            keeps.append(keep)
        if self._captures(layer):
            self.weights[layer] = weights.detach().to(torch.float16)
            self.keep_masks[layer] = torch.stack(keeps)
        if self.observers:
            every_key = all(p.name == "full" for p in self.policies)
            keep_all = None if every_key else torch.stack(keeps)
            for observe in self.observers:
                observe(layer, weights, keep_all)
        return mix_values(weights, value), weights
