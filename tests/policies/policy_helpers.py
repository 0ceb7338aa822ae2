"""Small shared helpers for the policy tests (plain tensors, no model)."""

from __future__ import annotations

import torch

from attnviz.budget import Budget
from attnviz.policies import LayerView


def causal(n: int) -> torch.Tensor:
    """The model's own causal mask as a policy sees it: bool ``(1, n, n)``."""
    return torch.ones(n, n, dtype=torch.bool).tril().unsqueeze(0)


def encoder(n: int) -> torch.Tensor:
    """An encoder's mask (every key allowed): bool ``(1, n, n)``."""
    return torch.ones(1, n, n, dtype=torch.bool)


def mat(rows: list[str]) -> torch.Tensor:
    """A hand-written boolean matrix from strings such as ``"1.1.."``."""
    return torch.tensor([[c == "1" for c in r.replace(" ", "")] for r in rows], dtype=torch.bool)


def keep_mask(
    policy: str,
    scores: torch.Tensor,
    allowed: torch.Tensor,
    budget: Budget,
    *,
    causal_model: bool = True,
    group: int = 1,
    layer: int = 0,
) -> torch.Tensor:
    """Validate ``budget`` and return the policy's effective keep mask ``(q_heads, q, k)``.

    ``None`` (every allowed key) is turned into ``allowed``; the policy's contract
    (its mask is a subset of ``allowed``) is asserted on the way.
    """
    pol = budget.policy
    assert pol.name == policy
    pol.validate(budget, causal_model)
    hq, q, k = scores.shape
    view = LayerView.for_budget(layer, causal_model, group, allowed, budget)
    scores = scores.masked_fill(~allowed, float("-inf"))  # as BudgetRun passes them
    keep = pol.keep(scores, allowed, budget.for_layer(layer), view)
    full = allowed.expand(hq, q, k)
    if keep is None:
        return full.clone()
    keep = keep.expand(hq, q, k)
    assert keep.dtype == torch.bool
    assert not (keep & ~full).any(), "policy kept a key the model's own mask forbids"
    return keep.clone()
