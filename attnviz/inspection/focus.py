"""Where one query looks under a budget, next to where it looked with full attention (for captions)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Focus", "focus_of", "find_token"]


@dataclass(frozen=True)
class Focus:
    """One query row of a head: its strongest key now and with full attention.

    ``key`` / ``full_key``: key positions (0-based) with the most weight; ``weight`` / ``full_weight``:
    those weights (shares of the row, 0..1).  ``prediction_changed``: whether the next-token prediction
    at the query differs from the full model's (None when there is none: an encoder, or no prediction given).
    """

    query: int
    key: int
    weight: float
    full_key: int
    full_weight: float
    prediction_changed: bool | None

    @property
    def moved(self) -> bool:
        """Whether the strongest key differs from full attention's."""
        return self.key != self.full_key


def focus_of(weights, full_weights, query: int, top1=None, full_top1=None) -> Focus:
    """The :class:`Focus` of row ``query`` of ``weights`` against ``full_weights`` (both ``(q, k)``).

    ``top1`` / ``full_top1``: per-position predicted token ids ``(q,)`` under the budget and in full (or None).
    Ties go to the earliest key.
    """
    w = np.asarray(weights, dtype=np.float64)
    f = np.asarray(full_weights, dtype=np.float64)
    if w.ndim != 2 or w.shape != f.shape:
        raise ValueError(f"weights {w.shape} and full_weights {f.shape} must be the same (q, k) shape")
    if not 0 <= query < w.shape[0]:
        raise ValueError(f"query {query} is outside 0..{w.shape[0] - 1}")
    row, full_row = np.nan_to_num(w[query], nan=-1.0), np.nan_to_num(f[query], nan=-1.0)
    key, full_key = int(row.argmax()), int(full_row.argmax())
    changed = None
    if top1 is not None and full_top1 is not None:
        changed = int(top1[query]) != int(full_top1[query])
    return Focus(query, key, float(row[key]), full_key, float(full_row[full_key]), changed)


def find_token(labels: Sequence[str], word: str) -> int | None:
    """Position of the first token whose label is ``word`` (ignoring a leading space mark ␣), or None."""
    for i, label in enumerate(labels):
        if label.lstrip("␣") == word:
            return i
    return None
