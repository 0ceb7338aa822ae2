"""Material for the "Spend one budget" page: the totals a frontier sweeps, the demand curve's points, rows
starved by a price, frontier points (one text, or the mean and range over several), and the page's sentences
with the current text's own numbers.

Everything here is computed from measured rows (quality) or counted from the reference run (pairs, prices).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from ..allocators.demand import Demand

__all__ = ["frontier_totals", "demand_points", "starved_rows", "frontier_points", "averaged_points",
           "uniform_keys_per_query", "compare_sentence", "floor_sentence", "mass_sentence"]


def frontier_totals(n_tokens: int, keys: int, count: int = 4) -> list[int]:
    """The totals (as uniform K) a frontier sweeps: ``count`` powers of two ending at the largest one at most
    ``n_tokens / 4`` (at least 1), plus the page's own ``keys`` when it is below ``n_tokens``; ascending."""
    top = max(1, 2 ** int(math.floor(math.log2(max(1, n_tokens // 4)))))
    sizes = [top // 2**i for i in range(count) if top // 2**i >= 1]
    if 1 <= keys < n_tokens:
        sizes.append(int(keys))
    return sorted(set(sizes))


def uniform_keys_per_query(n_tokens: int, keys: int, causal: bool = True) -> float:
    """Mean keys per query row uniform ``keys`` keeps: ``Σ_i min(K, i+1) / n`` (causal) or ``min(K, n)``."""
    if not causal:
        return float(min(keys, n_tokens))
    i = np.arange(1, n_tokens + 1)
    return float(np.minimum(keys, i).sum() / n_tokens)


def demand_points(demand: Demand, floor_keys: int, query_rows: int, lowest: float = 1e-5,
                  points: int = 121) -> tuple[np.ndarray, np.ndarray]:
    """The demand curve: prices ``(points,)`` from ``lowest`` to 1 (log-spaced) and the mean keys per query row
    the full run keeps at each, floor of ``floor_keys`` included (``query_rows`` = layers × query heads × n)."""
    prices = np.logspace(math.log10(lowest), 0.0, points)
    kept = np.array([demand.kept(float(p), floor_keys) for p in prices])
    return prices, kept / query_rows


def starved_rows(demand: Demand, tau: float, query_rows: int) -> float:
    """Share of query rows (over every layer and head) whose best key is below the price ``tau``: with no floor
    they would keep no key at all.  ``kept(τ, 1) − kept(τ, 0)`` counts exactly those rows."""
    return max(0.0, demand.kept(tau, 1) - demand.kept(tau, 0)) / query_rows


def frontier_points(rows: Sequence[Mapping], names: Sequence[str], x: str = "density", y: str = "kl") -> list[dict]:
    """Frontier points of JSON rows (:meth:`attnviz.measure.Row.to_json`) with efficiency over all of them; each
    point's ``policy`` is replaced by ``names[i]`` (its allocator's name: one curve per allocator)."""
    from ..measure.frontier import frontier_rows

    points = frontier_rows(rows, x=x, y=y)
    for p, name in zip(points, names, strict=True):
        p["policy"] = name
    return points


def averaged_points(rows_per_text: Sequence[Sequence[Mapping]], names: Sequence[str], labels: Sequence[str],
                    y: str = "kl") -> list[dict]:
    """Frontier points of the same budgets run on several texts: per budget, the mean density ``x``, the mean
    quality ``y`` and its range (``y_lo``, ``y_hi``) over the texts; efficiency decided on the means.

    ``rows_per_text``: one list of JSON rows per text, budgets in the same order in each; ``names`` each budget's
    curve (allocator), ``labels`` its label.
    """
    from ..measure.frontier import frontier_rows

    xs = np.array([[float(r["density"]) for r in rows] for rows in rows_per_text])
    ys = np.array([[float(r["quality"][y]) for r in rows] for rows in rows_per_text])
    mean_rows = [{"density": float(dx), "quality": {y: float(qy)}, "policy": name}
                 for dx, qy, name in zip(xs.mean(0), ys.mean(0), names, strict=True)]
    points = frontier_rows(mean_rows, x="density", y=y)
    for p, lo, hi, label in zip(points, ys.min(0), ys.max(0), labels, strict=True):
        p.update(y_lo=float(lo), y_hi=float(hi), label=label)
    return points


def _ratio_words(mine: float, base: float) -> str:
    if base <= 0:
        return "the same"
    r = mine / base
    if r < 0.995:
        return f"{(1 - r) * 100:.0f}% less"
    if r > 1.005:
        return f"{(r - 1) * 100:.0f}% more"
    return "about the same"


def compare_sentence(name: str, keys: int, kl_alloc: float, kl_uniform: float, density_alloc: float,
                     density_uniform: float, wins: Sequence[int] = (), losses: Sequence[int] = ()) -> str:
    """Where allocation helps and hurts, in the current text's numbers (KL measured, density counted);
    ``wins``/``losses`` the totals (as K) of a computed frontier where it beat or lost to uniform."""
    verdict = "helps here" if kl_alloc < kl_uniform * 0.995 else "hurts here" if kl_alloc > kl_uniform * 1.005 \
        else "changes little here"
    text = (f"**Where allocation helps, and where it hurts.** At a total of K = {keys}, `{name}` spends "
            f"{density_alloc:.1%} of the links (uniform: {density_uniform:.1%}) and its answers drift "
            f"{_ratio_words(kl_alloc, kl_uniform)} from the full model's (KL {kl_alloc:.3f} against {kl_uniform:.3f} "
            f"nats): spending unevenly {verdict}.")
    if wins or losses:
        parts = []
        if wins:
            parts.append("beats uniform at K = " + ", ".join(map(str, wins)))
        if losses:
            parts.append("loses to it at K = " + ", ".join(map(str, losses)))
        text += f" On the frontier below it {' and '.join(parts)}."
    text += (" A rule that moves keys to where attention is concentrated pays when some rows need few keys and "
             "others many; when every row is already short of keys, taking from one to give to another starves it.")
    return text


def floor_sentence(starved: float | None, floor_keys: int | None, tau: float | None, min_share: float,
                   max_share: float, scarce: tuple[float, float] | None = None) -> str:
    """Why a floor matters under scarcity: the share of query rows a price alone would starve (counted on the full
    run), and the poorest and richest layer–head's share kept (counted).

    ``scarce``: ``(price, starved share)`` at the price that spends the scarcest total (K = 1) with no floor,
    said when the current price starves almost no row.
    """
    text = ("**Why a floor matters under scarcity.** An uneven allocation leaves some queries poorer than uniform "
            f"would: here the poorest layer and head keeps {min_share:.1%} of its links and the richest "
            f"{max_share:.1%}.")
    if starved is not None and tau is not None and starved >= 0.005:
        text += (f" At the price τ = {tau:.3g}, {starved:.1%} of all queries (over every layer and head) have no key "
                 f"worth that much: without a floor they would keep nothing, and a query with no key has no "
                 f"answer at all. The floor gives each its best {floor_keys} first, a safety net paid for out of "
                 "the same total.")
    elif starved is not None and tau is not None:
        text += f" At the price τ = {tau:.3g} almost every query has a key worth that much, so the floor costs little."
        if scarce is not None:
            text += (f" Under scarcity it is another story: at the price that spends a total of one key per query "
                     f"(τ = {scarce[0]:.3g}) {scarce[1]:.1%} of all queries would keep nothing without a floor; "
                     f"the floor (here each query's best {floor_keys}) is their safety net.")
    else:
        text += (" A query left with too few keys loses the one word it needed; a floor (each query's best few "
                 "keys first, as `price` has) is a safety net paid for out of the same total.")
    return text


def mass_sentence(name: str, mass_alloc: float, mass_uniform: float, kl_alloc: float, kl_uniform: float) -> str:
    """Why attention mass kept is not quality kept, with both rows' measured mass and KL."""
    same_way = (mass_alloc > mass_uniform) == (kl_alloc < kl_uniform)
    text = (f"**Attention mass kept is not quality kept.** `{name}` keeps {mass_alloc:.1%} of the attention "
            f"mass and uniform {mass_uniform:.1%} (measured)")
    if same_way:
        text += (", and here the one that keeps more mass also drifts less. That need not hold: ")
    else:
        text += (f", yet the one keeping more mass drifts more (KL {kl_alloc:.3f} against {kl_uniform:.3f}). ")
    text += ("mass counts how much of each query's attention survives, not what the dropped keys carried. A "
             "key with little weight can hold the one fact a later layer needs, and an error in a low layer is "
             "passed up through every layer above it; only the model's answers (KL, top-1, perplexity) measure "
             "quality.")
    return text
