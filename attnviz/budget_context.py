"""The per-call state of one budgeted forward pass.

A :class:`BudgetRun` travels with a single ``model(...)`` call (as the
``attnviz=`` keyword, which transformers forwards to every attention layer),
never through module-level state: one cached model serves many users at once,
each call carrying its own budgets.  It holds one :class:`Budget` per batch
row (a sweep runs several budgets in one batched pass), applies their policies
layer by layer, and accumulates what the metrics need.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
    """

    budgets: Sequence[Budget]
    causal: bool = True
    capture: str | Iterable[int] | None = None
    stats: list[RowStats] = field(init=False)
    weights: dict[int, torch.Tensor] = field(init=False, default_factory=dict)
    keep_masks: dict[int, torch.Tensor] = field(init=False, default_factory=dict)
    memo: dict = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.budgets = list(self.budgets)
        self.policies = [get_policy(b.policy) for b in self.budgets]
        for p, b in zip(self.policies, self.budgets):
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
        keeps = [
            p.keep(scores[b], allowed[b], bgt.for_layer(layer), view)
            for b, (p, bgt) in enumerate(zip(self.policies, self.budgets))
        ]
        if all(k is None for k in keeps):
            mask = allowed
        else:
            mask = torch.stack([(allowed[b] if k is None else (k & allowed[b])).expand(hq, lq, lk)
                                for b, k in enumerate(keeps)])
        weights = masked_softmax(scores, mask)
        self._record(layer, scores, allowed, mask, keeps, weights, hkv)
        return mix_values(weights, value), weights

    def _record(self, layer, scores, allowed, mask, keeps, weights, hkv) -> None:
        batch, hq, lq, lk = scores.shape
        allowed_rows = allowed.sum(-1)  # (b, 1, q)
        for b, (stat, policy, k) in enumerate(zip(self.stats, self.policies, keeps)):
            n_allowed = int(allowed_rows[b].sum()) * hq
            stat.allowed_pairs += n_allowed
            if k is None:
                n_kept = n_allowed
                stat.mass_sum += float((allowed_rows[b] > 0).sum()) * hq
            else:
                n_kept = int(mask[b].sum())
                pre = masked_softmax(scores[b], allowed[b])
                stat.mass_sum += float((pre * mask[b]).sum())
            stat.mass_rows += int((allowed_rows[b] > 0).sum()) * hq
            stat.kept_pairs += n_kept
            stat.scored_pairs += n_allowed if policy.scores_all_pairs else n_kept
            if policy.evicts and k is not None:
                last = mask[b, :, -1, :].view(hkv, hq // hkv, lk).any(dim=1)
                stat.kv_keys += int(last.sum())
            else:
                stat.kv_keys += int(allowed[b, 0, -1].sum()) * hkv
        if self._captures(layer):
            self.weights[layer] = weights.detach().to(torch.float16)
            self.keep_masks[layer] = mask.expand(batch, hq, lq, lk).clone()
