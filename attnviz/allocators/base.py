"""The shared machinery every allocator builds on.

An allocator spends one total budget: it turns "as many kept pairs in all as
uniform ``K`` would keep on this text" into key counts per layer, query head
and query row.  The policy still chooses *which* keys fill each count.  Like a
policy, an allocator is a frozen dataclass whose fields are its parameters,
registered by name.

Two kinds of work, both optional:

* :meth:`Allocator.plan` runs once per text before the budgeted pass: it may
  set per-layer (and per-head) sizes (``Budget.layer_keys``) or resolve a
  parameter (a price found from the reference run's attention);
* :meth:`Allocator.layer_counts` runs in every layer of the pass (``dynamic``
  allocators only) and sets each row's count from that layer's own attention
  probabilities.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from ..budget import Budget, BudgetError
from ..params import Parametrised, check_values

if TYPE_CHECKING:
    from .demand import Demand

__all__ = ["Allocator", "Setting", "round_to_total"]


@dataclass
class Setting:
    """What an allocator may know when it plans for one text.

    ``layers``/``q_heads``/``kv_heads`` the model's shape; ``row_keys`` int64 ``(n,)`` the keys each
    query row may see (``i + 1`` in a causal text, ``n`` in an encoder); ``ids`` ``(1, n)`` the text's token
    ids.  ``demand(floor)`` gives the
    reference run's :class:`~attnviz.allocators.demand.Demand` (made on first use, from the reference's
    kept queries and keys: no extra forward); ``lm`` is the model, for allocators that calibrate on
    another text (their results are cached on disk); ``progress(done, total)`` reports calibration.
    """

    layers: int
    q_heads: int
    kv_heads: int
    causal: bool
    row_keys: torch.Tensor
    ids: torch.Tensor | None = None
    demand: Callable[..., Demand] | None = None
    lm: Any = None
    progress: Callable[[int, int], None] | None = None

    @property
    def n_tokens(self) -> int:
        return int(self.row_keys.numel())

    def uniform_pairs(self, keys: int) -> int:
        """Query-key pairs uniform ``keys`` keeps on this text, over every layer and query head."""
        return int(torch.clamp(self.row_keys, max=keys).sum()) * self.layers * self.q_heads


@dataclass(frozen=True)
class Allocator(Parametrised):
    """Base class: subclasses are frozen dataclasses (their fields are their parameters) and set the class
    attributes; they override :meth:`plan` and/or :meth:`layer_counts`.

    Class attributes:
        name: registry name (``--allocator NAME``).
        summary: one plain-language line for the app and ``--help``.
        methods: a paragraph (markdown) for the Methods page.
        uniform: True only for ``uniform``, today's even spending (no checks, no label).
        dynamic: :meth:`layer_counts` sets each row's count from the layer's own attention.
        reads_probabilities: it reads every pair's attention probability, so it must score every
            pair: its counted compute charges that, whatever the policy.
        causal_only: it needs a left-to-right model (next-token KL, the full run's kept queries).
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    methods: ClassVar[str] = ""
    uniform: ClassVar[bool] = False
    dynamic: ClassVar[bool] = False
    reads_probabilities: ClassVar[bool] = False
    causal_only: ClassVar[bool] = False

    def validate(self, budget: Budget, causal: bool) -> None:
        """Raise :class:`BudgetError` (one line naming the allocator and the policy) if they do not combine.

        A total is a key count; its policy must fill a count row by row.
        """
        check_values(f"allocator '{self.name}'", self)
        policy = budget.policy
        if self.uniform or policy.reference:
            return
        if self.causal_only and not causal:
            raise BudgetError(f"allocator '{self.name}' needs a causal (left-to-right) model: it measures "
                              "next-token predictions")
        if policy.ratio_only:
            raise BudgetError(f"allocator '{self.name}' hands out key counts, and policy '{policy.name}' keeps a "
                              "probability mass instead: use uniform, or a policy that takes K keys")
        if not policy.rowwise:
            raise BudgetError(f"allocator '{self.name}' sets counts per layer and row, and policy '{policy.name}' "
                              "keeps one cache of its own size through the whole text: use uniform with it")
        if budget.keys is None or not isinstance(budget.keys, int) or budget.layer_keys is not None:
            raise BudgetError(f"allocator '{self.name}' spends a total stated as one key count K (--keys), "
                              "not a ratio or per-layer sizes")

    def plan(self, budget: Budget, setting: Setting) -> Budget:
        """The budget to run on this text (default: unchanged).  May set ``layer_keys`` or resolve a parameter,
        and says what it decided in the budget's ``plan`` dict (JSON-ready; it goes into result rows)."""
        return budget

    def layer_counts(self, base: torch.Tensor, probs: torch.Tensor, allowed: torch.Tensor, budget: Budget
                     ) -> torch.Tensor:
        """``dynamic`` allocators: keys per row ``(q_heads, q)`` in one layer.

        Args:
            base: the uniform counts ``(heads or 1, q)`` of this layer's budget.
            probs: the layer's attention probabilities ``(q_heads, q, k)`` under full softmax (0 where forbidden).
            allowed: the model's own bool mask ``(1, q, k)``.
            budget: this layer's budget (as planned).
        """
        return base

    def exact_prefix(self, budget: Budget, n_tokens: int) -> int:
        """Leading rows that surely keep every key under this allocation (``n_tokens``: no limit of its own)."""
        return n_tokens


def round_to_total(values: list[float], total: int, low: int = 1) -> list[int]:
    """Integers near ``values``, each at least ``low``, summing to ``total`` exactly (largest remainders).

    Raises ValueError if ``total < low * len(values)``.
    """
    if total < low * len(values):
        raise ValueError(f"a total of {total} cannot give {len(values)} parts at least {low} each")
    out = [max(low, int(v)) for v in values]
    rest = [v - int(v) if int(v) >= low else -1.0 for v in values]  # parts raised to `low` give nothing back
    diff = total - sum(out)
    order = sorted(range(len(values)), key=lambda i: -rest[i])
    while diff > 0:  # hand out units to the largest remainders, round after round
        for i in order[:diff]:
            out[i] += 1
        diff = total - sum(out)
    while diff < 0:  # take units back from the largest parts still above `low`
        i = max((j for j in range(len(out)) if out[j] > low), key=lambda j: (out[j], -j))
        out[i] -= 1
        diff += 1
    return out
