"""A budget: which policy decides the kept keys, and how many it may keep.

A budget is a plain, hashable value (it travels with each forward call and
keys the app's caches).  Its size is either an absolute key count ``keys`` or
a keep ratio ``ratio`` in (0, 1]; for ``topp`` the ratio is the mass ``p``.

Per-row counts follow one formula for every policy (``A_i`` = keys query ``i``
may see under the model's own causal/padding mask):

* ratio ``R``: ``max(1, ceil(R * |A_i| - 1e-9))``
* keys ``K``: ``min(K, |A_i|)``

``keys`` may also be a tuple with one count per query head, so budgets can
later be allocated per head (and, through :meth:`Budget.for_layer`, per layer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

__all__ = ["Budget", "BudgetError", "keep_counts"]


class BudgetError(ValueError):
    """A budget that makes no sense for its policy or model (message is user-facing)."""


@dataclass(frozen=True)
class Budget:
    """What to keep: ``policy`` name, and exactly one of ``keys`` or ``ratio`` (unless ``full``).

    ``sinks`` is used by ``sink_window`` (StreamingLLM's attention sinks);
    ``seed`` by ``random``.  ``layer_keys`` optionally overrides ``keys`` per
    layer (a tuple indexed by layer; each entry an int or a per-head tuple).
    """

    policy: str = "full"
    keys: int | tuple[int, ...] | None = None
    ratio: float | None = None
    sinks: int = 4
    seed: int = 0
    layer_keys: tuple[int | tuple[int, ...], ...] | None = None

    def for_layer(self, layer: int) -> Budget:
        """This budget as it applies to one layer (resolves ``layer_keys``)."""
        if self.layer_keys is None:
            return self
        return replace(self, keys=self.layer_keys[layer], layer_keys=None)

    @property
    def label(self) -> str:
        """Short human label, e.g. ``topk K=32`` or ``window R=0.25``."""
        if self.policy == "full":
            return "full"
        if self.layer_keys is not None:
            size = "per-layer K"
        elif self.keys is not None:
            size = f"K={self.keys}" if isinstance(self.keys, int) else "per-head K"
        elif self.policy == "topp":
            size = f"p={self.ratio:g}"
        else:
            size = f"R={self.ratio:g}"
        extra = f" S={self.sinks}" if self.policy == "sink_window" else ""
        extra += f" seed={self.seed}" if self.policy == "random" else ""
        return f"{self.policy} {size}{extra}"

    def key_sizes(self) -> list[int]:
        """Every key count this budget names (over layers and heads); empty for a ratio."""
        sizes = list(self.layer_keys or ()) + ([self.keys] if self.keys is not None else [])
        return [int(k) for s in sizes for k in (s if isinstance(s, tuple) else (s,))]

    def check_size(self) -> None:
        """Raise :class:`BudgetError` unless exactly one well-formed size is given."""
        if self.policy == "full":
            return
        has_keys = self.keys is not None or self.layer_keys is not None
        if has_keys == (self.ratio is not None):
            raise BudgetError(f"policy '{self.policy}' needs exactly one of a key count or a ratio")
        if self.ratio is not None and not (0.0 < self.ratio <= 1.0) or (
            self.ratio is not None and math.isnan(self.ratio)
        ):
            raise BudgetError(f"budget ratio must be in (0, 1], got {self.ratio}")
        for k in self.key_sizes():
            if k < 1:
                raise BudgetError(f"key count must be at least 1, got {k}")


def keep_counts(allowed_counts: torch.Tensor, budget: Budget) -> torch.Tensor:
    """Keys to keep per row.

    Args:
        allowed_counts: ``|A_i|`` per row, integer tensor of shape ``(heads, rows)``
            (``heads`` may be 1).
        budget: a layer's budget (``keys`` an int or a per-head tuple, or ``ratio``).

    Returns:
        int64 tensor broadcast to ``(heads', rows)``, never above ``|A_i|``.
    """
    a = allowed_counts.long()
    if budget.ratio is not None:
        k = torch.ceil(budget.ratio * a.double() - 1e-9).long().clamp_min(1)
    else:
        keys = budget.keys
        k = torch.as_tensor(keys if isinstance(keys, tuple) else (keys,), dtype=torch.long).view(-1, 1)
    return torch.minimum(k, a)
