"""``price``: one market price for attention, the same in every layer, head and row.

A key is kept when its attention probability is at least the price ``τ``; each
row first keeps its best ``F = max(1, ⌊f·K⌋)`` keys (a floor: a safety net
under scarcity).  Unless set, ``τ`` is found by bisection on the reference
run's probabilities (:class:`~attnviz.allocators.demand.Demand`) so that the
reference would keep the requested total: no extra forward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch

from ..budget import Budget
from .base import Allocator, Setting
from .registry import register


@register
@dataclass(frozen=True)
class Price(Allocator):
    name = "price"
    causal_only = True
    summary = "One price for attention everywhere: keep a key if its probability is at least τ, plus a floor."
    methods = ("A market price: every layer, head and query keeps the keys whose attention probability is at "
               "least τ, after first keeping its best F = max(1, ⌊f·K⌋) (the floor). τ is found by bisection "
               "on the full run's probabilities so that the full run would keep as many pairs as uniform K; "
               "or set by hand. It reads every probability, so it scores every pair.")
    dynamic = True
    reads_probabilities = True
    tau: float = field(default=0.0, metadata={"min": 0.0, "max": 1.0, "label": "τ",
                                              "help": "the price: a key is kept if its attention probability "
                                                      "is at least τ (0: the price that spends the total)"})
    floor: float = field(default=0.25, metadata={"min": 0.0, "max": 1.0, "label": "f",
                                                 "help": "each query first keeps its best max(1, ⌊f·K⌋) keys"})

    def param_labels(self) -> list[str]:
        return [f"τ={self.tau:.3g}" if self.tau > 0 else "τ=auto", f"f={self.floor}"]

    def floor_keys(self, keys: int) -> int:
        """``F``: the keys each row keeps before the price applies."""
        return max(1, math.floor(self.floor * keys + 1e-9))

    def plan(self, budget: Budget, setting: Setting) -> Budget:
        if self.tau > 0:
            return replace(budget, plan={"tau": self.tau})
        target = setting.uniform_pairs(int(budget.keys))
        floor = self.floor_keys(int(budget.keys))
        tau = setting.demand(floor).price_for(target, floor)
        return replace(budget, allocator=replace(self, tau=tau), plan={"tau": tau})

    def layer_counts(self, base, probs, allowed, budget):
        row_keys = allowed.sum(-1)  # (1, q)
        above = (probs >= self.tau).sum(-1)  # (H, q); forbidden keys have probability 0
        floor = torch.clamp(row_keys, max=self.floor_keys(int(budget.keys)))
        return torch.minimum(torch.maximum(above, floor), row_keys)

    def exact_prefix(self, budget, n_tokens):
        return min(self.floor_keys(int(budget.keys)), n_tokens)
