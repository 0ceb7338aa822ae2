"""Pareto frontiers of cost vs quality over sweep results.

A point is *efficient* when no other point is at least as cheap and at least
as good, and strictly better in one of the two.  Identical points are all
efficient (neither beats the other).  Points with a missing (None/NaN) cost or
quality are never efficient and never beat another point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..budget import Budget, BudgetError

__all__ = ["pareto_front", "frontier_rows", "row_label", "HIGHER_IS_BETTER", "LOWER_IS_BETTER", "COST_KEYS"]

# Quality keys of a row's "quality" block (attnviz.measure.Row.to_json) and which way is better.
LOWER_IS_BETTER = frozenset({"kl", "ppl"})
HIGHER_IS_BETTER = frozenset({"top1", "mass_kept", "cos_embedding", "cos_tokens"})
# Cost keys: "density" (a row's own field) or any key of its "compute" block; lower is cheaper.
COST_KEYS = frozenset({"density", "attn_pairs", "attn_flops", "total_flops", "kv_bytes", "seconds"})


def pareto_front(cost: Sequence[float] | np.ndarray, quality: Sequence[float] | np.ndarray,
                 higher_is_better: bool = True) -> np.ndarray:
    """Bool mask ``(n,)`` of the efficient points (lower cost is better; ``quality`` as told).

    O(n²) comparisons, vectorised: fine for the few hundred points of a sweep.
    """
    c = np.asarray(cost, dtype=float).ravel()
    q = np.asarray(quality, dtype=float).ravel()
    if c.shape != q.shape:
        raise ValueError(f"cost and quality differ in length: {c.size} vs {q.size}")
    if not higher_is_better:
        q = -q
    valid = ~(np.isnan(c) | np.isnan(q))
    cv, qv = c[valid], q[valid]
    # beats[j, i]: point j is no worse than i in both and strictly better in one.
    no_worse = (cv[:, None] <= cv[None, :]) & (qv[:, None] >= qv[None, :])
    strictly = (cv[:, None] < cv[None, :]) | (qv[:, None] > qv[None, :])
    efficient = np.zeros(c.shape, dtype=bool)
    efficient[valid] = ~(no_worse & strictly).any(axis=0)
    return efficient


def _blocks(row: dict) -> tuple[dict, dict, dict]:
    return row, row.get("compute") or {}, row.get("quality") or {}


def _value(row: dict, key: str) -> float:
    """A number from a sweep row (top level, then ``compute``, then ``quality``); NaN if missing."""
    for block in _blocks(row):
        if key in block and not isinstance(block[key], dict):
            v = block[key]
            return math.nan if v is None else float(v)
    return math.nan


def row_label(row: dict) -> str:
    """A short label for a sweep row, e.g. ``window K=64``, ``topp p=0.9``, ``sink_window K=64 S=4``:
    the label of its budget (:attr:`attnviz.budget.Budget.label`), or its policy name and size when
    the row's policy is not registered here (a plug-in not loaded)."""
    try:
        return Budget.from_json(row).label
    except (BudgetError, KeyError, TypeError):
        size = f"K={row['keys']}" if row.get("keys") is not None else (
            f"R={row['budget']:g}" if row.get("budget") is not None else "")
        return f"{row.get('policy', '?')} {size}".strip()


def frontier_rows(rows_json: Sequence[dict], x: str = "density", y: str = "kl") -> list[dict]:
    """Points for a cost-quality plot, with their Pareto efficiency over all policies together.

    Args:
        rows_json: sweep rows as produced by :meth:`attnviz.measure.Row.to_json`.
        x: the cost (lower is better): ``density`` or a ``compute`` key such as ``attn_flops``.
        y: the quality: ``kl``/``ppl`` (lower is better) or ``top1``/``mass_kept``/``cos_*`` (higher).

    Returns:
        One dict per row, in order: ``x``, ``y`` (float, or None if the row has
        no such value, e.g. ``kl`` for an encoder), ``policy``, ``label`` and
        ``efficient`` (bool).
    """
    if y in LOWER_IS_BETTER:
        higher = False
    elif y in HIGHER_IS_BETTER:
        higher = True
    else:
        raise ValueError(f"unknown quality {y!r}: use one of {sorted(LOWER_IS_BETTER | HIGHER_IS_BETTER)}")
    if rows_json and not any(x in block for r in rows_json for block in _blocks(r)):
        raise ValueError(f"unknown cost {x!r}: no row has it (try one of {sorted(COST_KEYS)})")
    xs = np.array([_value(r, x) for r in rows_json], dtype=float)
    ys = np.array([_value(r, y) for r in rows_json], dtype=float)
    efficient = pareto_front(xs, ys, higher_is_better=higher)
    return [
        {"x": None if math.isnan(xv) else float(xv), "y": None if math.isnan(yv) else float(yv),
         "policy": r.get("policy"), "label": row_label(r), "efficient": bool(e)}
        for r, xv, yv, e in zip(rows_json, xs, ys, efficient, strict=True)
    ]
