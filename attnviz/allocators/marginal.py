"""``marginal`` (water-filling by marginal value, as in LU-KV, Li et al. 2026).

On a calibration text, measure for each layer the KL to full when only that layer is budgeted, at
``K`` = 1, 2, 4, … (:func:`value_curves`); make each curve convex; then hand out keys one at a time to
the layer whose KL falls most for its next key, until the total's pairs are spent.  The last key's fall
is the *water level*: every layer ends where one more key is worth about that much.

To stay within a few forwards, only the last ``n/8`` query rows of the calibration text are budgeted by
default (the earlier ones keep every key, so they are taken from the full run, not recomputed); a curve is
the mean KL over the positions those rows predict.  ``rows=1`` budgets every row: the faithful curve, which
allocated better in ``benchmarks/allocation_pays.py`` (see benchmarks/README.md), at about 8 times the cost.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..budget import Budget
from ..hosting import calibration_size
from .base import Allocator, Setting
from .calibration import CALIBRATION_CHOICES, cached_arrays, calibration_name, shipped_text
from .registry import register

__all__ = ["Marginal", "value_curves", "convex_curve", "water_fill", "calibration_rows"]


def calibration_rows(n_tokens: int, share: float = 0.125) -> int:
    """Query rows budgeted in a calibration run of ``n_tokens``: the last ``max(8, share·n)`` (fewer if short);
    every row for ``share`` 1."""
    if share >= 1:
        return n_tokens
    return max(1, min(n_tokens - 1, max(8, int(n_tokens * share))))


@dataclass(frozen=True)
class _LastRows(Allocator):
    """Internal: uniform counts in the last ``rows`` query rows of a causal text of ``n`` tokens; every earlier
    row keeps every key, so those rows equal the full run and a packed pass takes them from it."""

    name = "last_rows"
    summary = "Only the last rows are budgeted (calibration)."
    uniform = True  # no plan, no label: a calibration's own
    dynamic = True
    rows: int = 8
    n: int = 0

    def layer_counts(self, base, probs, allowed, budget):
        row_keys = allowed.sum(-1)  # (1, q): a causal row at position i sees i + 1 keys
        return torch.where(row_keys <= self.n - self.rows, row_keys, base.expand(probs.shape[0], -1))

    def exact_prefix(self, budget: Budget, n_tokens: int, policy_prefix: int) -> int:
        return max(policy_prefix, n_tokens - self.rows)


def value_curves(lm, text_name: str, n_tokens: int, progress=None, share: float = 0.125) -> dict[str, np.ndarray]:
    """Per layer, KL to full when only that layer is budgeted with ``topk`` at each ``K`` of ``keys``.

    Returns ``{"keys": (G,), "kl": (layers, G), "n_tokens": (), "rows": ()}`` (the last key count is the
    text's length, KL 0), measured on the first ``n_tokens`` tokens of the shipped text ``text_name`` and
    cached on disk.  ``progress(done, total)`` counts budgets; ``share`` of the last rows is budgeted.
    """
    from ..measure.passes import budget_pass, encode_for, reference_pass

    def measure() -> dict[str, np.ndarray]:
        enc = encode_for(lm, shipped_text(text_name), n_tokens)
        n = enc.n_tokens
        ref = reference_pass(lm, enc)
        layers = ref.shape.layers
        grid = [k for k in (2 ** i for i in range(n.bit_length())) if k < n]
        m = calibration_rows(n, share)
        last = _LastRows(rows=m, n=n)
        budgets = [Budget("topk", layer_keys=tuple(k if j == layer else n for j in range(layers)), allocator=last)
                   for layer in range(layers) for k in grid]
        rows = budget_pass(lm, ref, budgets, progress=progress)
        scale = (n - 1) / max(1, min(m, n - 1))  # the mean over every position -> over the budgeted ones
        kl = np.array([r.quality.kl * scale for r in rows]).reshape(layers, len(grid))
        return {"keys": np.array([*grid, n]), "kl": np.concatenate([kl, np.zeros((layers, 1))], axis=1),
                "n_tokens": np.array(n), "rows": np.array(m)}

    kind = "marginal" if share == 0.125 else f"marginal-rows{share:g}"
    return cached_arrays(kind, lm, text_name, n_tokens, measure)


def convex_curve(keys: np.ndarray, kl: np.ndarray) -> np.ndarray:
    """The largest convex, non-increasing curve under the points ``(keys, kl)``, at ``keys`` (its lower hull)."""
    y = np.minimum.accumulate(np.asarray(kl, dtype=np.float64))
    hull: list[int] = []
    for i in range(len(keys)):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # b lies on or above the chord a-i: not a vertex of the lower hull
            if (y[b] - y[a]) * (keys[i] - keys[a]) >= (y[i] - y[a]) * (keys[b] - keys[a]):
                hull.pop()
            else:
                break
        hull.append(i)
    return np.interp(keys, keys[hull], y[hull])


def water_fill(keys: np.ndarray, curves: np.ndarray, row_keys: torch.Tensor, heads: int, target_pairs: int
               ) -> tuple[tuple[int, ...], float]:
    """Per-layer key counts spending ``target_pairs``, and the water level (KL fall of the last key given).

    ``curves`` ``(layers, G)`` convex, non-increasing KL at ``keys``; beyond the last key count the KL is 0.
    Every layer starts at 1 key; each next key goes to the layer whose KL falls most for it, until the
    pairs kept (``Σ_rows min(K_l, |A_i|)`` per head, over layers) reach the target (the closer of the
    counts just below and just above it).
    """
    layers = curves.shape[0]
    limit = int(row_keys.max())
    cost = torch.bincount(row_keys, minlength=limit + 2).flip(0).cumsum(0).flip(0)  # rows with > K keys: cost[K+1]

    def fall(layer: int, k: int) -> float:  # KL saved by going from k to k+1 keys
        kl = np.interp([k, k + 1], keys, curves[layer], right=0.0)
        return float(kl[0] - kl[1])

    counts = [1] * layers
    spent = int(torch.clamp(row_keys, max=1).sum()) * heads * layers
    heap = [(-fall(layer, 1), layer) for layer in range(layers)]
    heapq.heapify(heap)
    level = 0.0
    while heap:
        neg, layer = heapq.heappop(heap)
        k = counts[layer]
        if k >= limit:
            continue
        step = int(cost[k + 1]) * heads
        if spent + step > target_pairs:
            if target_pairs - spent > spent + step - target_pairs:  # nearer above than below
                counts[layer], spent, level = k + 1, spent + step, -neg
            break
        counts[layer], spent, level = k + 1, spent + step, -neg
        heapq.heappush(heap, (-fall(layer, k + 1), layer))
    return tuple(counts), level


@register
@dataclass(frozen=True)
class Marginal(Allocator):
    name = "marginal"
    causal_only = True
    summary = "Water-filling: each next key goes to the layer where it lowers the loss most (LU-KV)."
    methods = ("Marginal value, water-filling as in LU-KV ([Li et al., 2026](https://arxiv.org/abs/2602.08585)): "
               "on a calibration text, each layer's KL to full is measured with only that layer budgeted at "
               "K = 1, 2, 4, … (its last n/8 query rows, to stay within a few forwards), made convex, and each "
               "next key goes to the layer whose KL falls most for it until the total's pairs are spent.")
    calibration: str = field(default="auto", metadata={
        "choices": CALIBRATION_CHOICES, "label": "on",
        "help": "the shipped text the value curves are measured on (auto: one other than the text evaluated)"})
    rows: float = field(default=0.125, metadata={
        "min": 0.05, "max": 1.0, "label": "rows",
        "help": "share of the calibration text's last query rows budgeted (1: every row, the faithful curve, at "
                "about 8 times the cost of the default)"})

    def plan(self, budget: Budget, setting: Setting) -> Budget:
        name = calibration_name(self.calibration, setting.ids, setting.lm, setting.n_tokens)
        # A public server calibrates on at most its cap (beyond the curves' last key count the KL is 0).
        n_cal, share = calibration_size(setting.n_tokens, self.rows)
        got = value_curves(setting.lm, name, n_cal, setting.progress, share)
        keys = got["keys"].astype(np.float64)
        curves = np.stack([convex_curve(keys, layer) for layer in got["kl"]])
        target = setting.uniform_pairs(int(budget.keys))
        layer_keys, level = water_fill(keys, curves, setting.row_keys, setting.q_heads, target)
        return replace(budget, layer_keys=layer_keys, plan={
            "layer_keys": list(layer_keys), "water_level": level, "calibration": name,
            "curve_keys": [int(k) for k in got["keys"]], "curve_kl": np.round(got["kl"], 6).tolist(),
            "curve_convex": np.round(curves, 6).tolist(), "calibration_rows": int(got["rows"]),
            "calibration_tokens": int(got["n_tokens"])})
