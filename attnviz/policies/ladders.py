"""Budget ladders: the sizes a sweep tries on a text of ``n`` tokens (each policy picks its own, see
:meth:`attnviz.policies.Policy.ladder`)."""

from __future__ import annotations

__all__ = ["KEY_FRACTIONS", "TOPP_MASSES", "key_ladder", "mass_ladder"]

KEY_FRACTIONS = (1 / 32, 1 / 16, 1 / 8, 3 / 16, 1 / 4, 3 / 8, 1 / 2, 3 / 4)
TOPP_MASSES = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999)


def key_ladder(n_tokens: int, count: int = 8, minimum: int = 1) -> list[int]:
    """``count`` distinct key counts spread over a text's length (n/32 … 3n/4), each at least ``minimum``."""
    fracs = KEY_FRACTIONS if count == len(KEY_FRACTIONS) else [(i + 1) / (count + 1) for i in range(count)]
    ladder = sorted({max(minimum, round(n_tokens * f)) for f in fracs})
    return [k for k in ladder if k < n_tokens] or [max(minimum, n_tokens - 1)]


def mass_ladder(count: int = 8) -> list[float]:
    """``count`` attention masses p from 0.5 up (:data:`TOPP_MASSES` for 8)."""
    return list(TOPP_MASSES) if count == len(TOPP_MASSES) else [1 - 0.5 ** (i + 1) for i in range(count)]
