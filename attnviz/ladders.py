"""Budget ladders: the budgets a sweep tries for each policy on a text of ``n`` tokens."""

from __future__ import annotations

from .budget import Budget

__all__ = ["KEY_FRACTIONS", "TOPP_MASSES", "key_ladder", "budget_ladder"]

KEY_FRACTIONS = (1 / 32, 1 / 16, 1 / 8, 3 / 16, 1 / 4, 3 / 8, 1 / 2, 3 / 4)
TOPP_MASSES = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999)


def key_ladder(n_tokens: int, count: int = 8, minimum: int = 1) -> list[int]:
    """``count`` distinct key counts spread over a text's length (n/32 … 3n/4), each at least ``minimum``."""
    fracs = KEY_FRACTIONS if count == len(KEY_FRACTIONS) else [(i + 1) / (count + 1) for i in range(count)]
    ladder = sorted({max(minimum, round(n_tokens * f)) for f in fracs})
    return [k for k in ladder if k < n_tokens] or [max(minimum, n_tokens - 1)]


def budget_ladder(policy: str, n_tokens: int, count: int = 8, sinks: int = 4, seed: int = 0) -> list[Budget]:
    """The budgets to sweep for ``policy`` (masses for ``topp``, key counts otherwise)."""
    if policy == "full":
        return [Budget("full")]
    if policy == "topp":
        masses = TOPP_MASSES if count == len(TOPP_MASSES) else [1 - 0.5 ** (i + 1) for i in range(count)]
        return [Budget("topp", ratio=p) for p in masses]
    minimum = sinks + 1 if policy == "sink_window" else 1
    return [Budget(policy, keys=k, sinks=sinks, seed=seed) for k in key_ladder(n_tokens, count, minimum)]
