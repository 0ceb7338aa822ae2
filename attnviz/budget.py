"""A budget: a policy (with its parameters) and how many keys it may keep.

A budget is a plain, hashable value (it travels with each forward call and
keys the app's caches).  Its size is either an absolute key count ``keys`` or
a keep ratio ``ratio`` in (0, 1]; for ``topp`` the ratio is the mass ``p``.

Per-row counts follow one formula for every policy (``A_i`` = keys query ``i``
may see under the model's own causal/padding mask):

* ratio ``R``: ``max(1, ceil(R * |A_i| - 1e-9))``
* keys ``K``: ``min(K, |A_i|)``

``keys`` may also be a tuple with one count per query head, and
``layer_keys`` one entry per layer (an int or a per-head tuple), so a total
can be allocated unevenly (resolved per layer by :meth:`Budget.for_layer`).

A budget's ``allocator`` (:mod:`attnviz.allocators`) decides how a total is
spread over layers, heads and rows: ``uniform`` (the default) gives every row
the counts above; the others plan ``layer_keys`` or set per-row counts from
each layer's own attention.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .allocators.base import Allocator
    from .policies.base import Policy

__all__ = ["Budget", "BudgetError", "keep_counts"]


class BudgetError(ValueError):
    """A budget that makes no sense for its policy or model (message is user-facing)."""


@dataclass(frozen=True)
class Budget:
    """What to keep: a ``policy`` instance, and exactly one of ``keys`` or ``ratio`` (unless the reference).

    ``policy`` (and ``allocator``) may be given as a registered name, meaning that plug-in with its
    default parameters (``Budget("topk", keys=8)``); :meth:`of` takes parameters too.
    """

    policy: Policy | str = "full"
    keys: int | tuple[int, ...] | None = None
    ratio: float | None = None
    layer_keys: tuple[int | tuple[int, ...], ...] | None = None
    allocator: Allocator | str = "uniform"
    plan: dict | None = field(default=None, compare=False, hash=False, repr=False)
    """What the allocator decided for one text (set by its ``plan``; e.g. the price found): not part of the
    budget's identity."""

    def __post_init__(self) -> None:
        if isinstance(self.policy, str):
            from .policies import get_policy  # the registry imports this module

            object.__setattr__(self, "policy", get_policy(self.policy))
        if isinstance(self.allocator, str):
            from .allocators import get_allocator

            object.__setattr__(self, "allocator", get_allocator(self.allocator))
        if self.policy.reference and not self.allocator.uniform:  # every key kept: nothing to allocate
            from .allocators import get_allocator

            object.__setattr__(self, "allocator", get_allocator("uniform"))

    @classmethod
    def of(cls, policy: str, *, keys: int | tuple[int, ...] | None = None, ratio: float | None = None,
           layer_keys: tuple | None = None, allocator: Allocator | str = "uniform", **params: Any) -> Budget:
        """The budget of the policy registered as ``policy`` with ``params`` (e.g. ``sinks=2``).

        A parameter the policy does not have raises :class:`BudgetError`.
        """
        from .policies import get_policy

        return cls(get_policy(policy, **params), keys=keys, ratio=ratio, layer_keys=layer_keys, allocator=allocator)

    @property
    def name(self) -> str:
        """The policy's registered name."""
        return self.policy.name

    def for_layer(self, layer: int) -> Budget:
        """This budget as it applies to one layer (resolves ``layer_keys``)."""
        if self.layer_keys is None:
            return self
        if not 0 <= layer < len(self.layer_keys):  # one line, not an IndexError deep in a forward
            raise BudgetError(f"per-layer key counts need one count per layer: got {len(self.layer_keys)}, "
                              f"asked for layer {layer + 1}")
        return replace(self, keys=self.layer_keys[layer], layer_keys=None)

    def check_layers(self, layers: int) -> None:
        """Raise :class:`BudgetError` unless ``layer_keys`` (if given) has exactly one entry per layer of a model
        with ``layers`` layers (the budget cannot know the model; a longer tuple would be silently cut)."""
        if self.layer_keys is not None and len(self.layer_keys) != layers:
            raise BudgetError(f"per-layer key counts need one count per layer: got {len(self.layer_keys)}, "
                              f"the model has {layers}")

    @property
    def size_label(self) -> str:
        """The size alone, e.g. ``K=32``, ``R=0.25``, ``p=0.9`` or ``per-layer K`` (empty for the reference)."""
        if self.policy.reference:
            return ""
        if self.layer_keys is not None and self.keys is None:
            return "per-layer K"
        if self.keys is not None:
            return f"K={self.keys}" if isinstance(self.keys, int) else "per-head K"
        return f"{self.policy.ratio_symbol}={self.ratio:g}" if self.ratio is not None else ""

    @property
    def label(self) -> str:
        """Short human label: the policy, its size and its parameters, e.g. ``sink_window K=32 S=4``;
        then the allocator and its parameters unless uniform (``topk K=8 · pyramid s=0.5``)."""
        label = " ".join(part for part in (self.policy.name, self.size_label, *self.policy.param_labels()) if part)
        if self.allocator.uniform:
            return label
        return label + " · " + " ".join([self.allocator.name, *self.allocator.param_labels()])

    def key_sizes(self) -> list[int]:
        """Every key count this budget names (over layers and heads); empty for a ratio."""
        sizes = list(self.layer_keys or ()) + ([self.keys] if self.keys is not None else [])
        return [int(k) for s in sizes for k in (s if isinstance(s, tuple) else (s,))]

    def check_size(self) -> None:
        """Raise :class:`BudgetError` unless exactly one well-formed size is given."""
        if self.policy.reference:
            return
        has_keys = self.keys is not None or self.layer_keys is not None
        if has_keys == (self.ratio is not None):
            raise BudgetError(f"policy '{self.name}' needs exactly one of a key count or a ratio")
        if self.ratio is not None and (math.isnan(self.ratio) or not 0.0 < self.ratio <= 1.0):
            raise BudgetError(f"budget ratio must be in (0, 1], got {self.ratio}")
        for k in self.key_sizes():
            if k < 1:
                raise BudgetError(f"key count must be at least 1, got {k}")

    def to_json(self) -> dict:
        """The budget's fields of a result row: policy, size, legacy ``sinks``/``seed``, every parameter, and the
        allocator with its parameters."""
        params = self.policy.params()
        keys = self.keys if self.keys is None or isinstance(self.keys, int) else list(self.keys)
        return {"policy": self.name, "keys": keys, "budget": self.ratio, "sinks": params.get("sinks"),
                "seed": params.get("seed"), "params": params, "allocator": self.allocator.name,
                "allocator_params": self.allocator.params()}

    @classmethod
    def from_json(cls, row: dict) -> Budget:
        """The budget of a result row (:meth:`to_json`); :class:`BudgetError` if its policy is not registered."""
        params = row.get("params")
        if params is None:  # rows written before policies owned their parameters
            params = {k: row[k] for k in ("sinks", "seed") if row.get(k) is not None}
        keys = row.get("keys")
        from .allocators import get_allocator

        allocator = get_allocator(row.get("allocator", "uniform"), **row.get("allocator_params", {}))
        return cls.of(row["policy"], keys=tuple(keys) if isinstance(keys, list) else keys, ratio=row.get("budget"),
                      allocator=allocator, **params)


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
