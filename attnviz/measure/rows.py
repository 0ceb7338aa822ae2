"""One budget's result: its budget, density, measured quality and counted compute."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..budget import Budget
from ..engine.run import RowStats
from .compute import Compute
from .metrics import Quality

__all__ = ["Row"]


@dataclass
class Row:
    """One budget's result: ``quality`` (measured) and ``compute`` (counted, but for ``seconds``).

    ``weights``/``keep`` map captured layers to ``(q_heads, n, n)`` float16
    weights and bool keep masks; ``top1`` is the budgeted model's predicted next
    token per position (causal only).  ``allocation`` ``(layers, q_heads)`` is the share of allowed pairs
    kept per layer and head (counted); ``plan`` what the budget's allocator decided (e.g. its price).
    """

    budget: Budget
    density: float
    quality: Quality
    compute: Compute
    stats: RowStats
    top1: torch.Tensor | None = None
    weights: dict[int, torch.Tensor] = field(default_factory=dict)
    keep: dict[int, torch.Tensor] = field(default_factory=dict)
    allocation: torch.Tensor | None = None
    plan: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """The JSON row: the budget's fields (:meth:`Budget.to_json`), density, quality, compute and the
        allocation (share kept per layer, and per layer and query head, with what the allocator planned)."""
        row = {**self.budget.to_json(), "density": self.density,
               "quality": self.quality.to_json(), "compute": self.compute.to_json()}
        if self.allocation is not None:
            row["allocation"] = {"layers": [round(float(x), 6) for x in self.allocation.mean(1)],
                                 "heads": [[round(float(x), 6) for x in layer] for layer in self.allocation],
                                 **self.plan}
        return row
