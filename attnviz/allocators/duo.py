"""``duo`` (DuoAttention, Xiao et al. 2024): a few retrieval heads see everything, the rest stream.

On a calibration text, each KV head is ranked by the attention mass that falls outside its ``S`` sinks
and a recent window of the uniform size (what a uniform ``sink_window`` would lose there; kvpress's
on-the-fly variant of the learned gate).  The top share ``f`` of KV heads (over the whole model) keep
every key; the others keep ``S`` sinks and a recent window, sized so that the total is spent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..budget import Budget, BudgetError
from ..hosting import calibration_size
from .base import Allocator, Setting
from .calibration import CALIBRATION_CHOICES, cached_arrays, calibration_name, shipped_text
from .registry import register

__all__ = ["Duo", "distance_mass", "outside_mass"]


def distance_mass(weights: torch.Tensor, sinks: int) -> torch.Tensor:
    """Attention ``(q_heads, n, n)`` (causal) summed by distance to the query over non-sink keys, per row
    mean: ``(q_heads, n)``, entry ``d`` the mean mass a row puts on the key ``d`` back (if not a sink)."""
    h, n, _ = weights.shape
    pos = torch.arange(n).view(n, 1) - torch.arange(n).view(1, n)  # (row i, distance d) -> key position i - d
    valid = pos >= sinks
    picked = weights.gather(2, pos.clamp_min(0).expand(h, n, n)) * valid
    return picked.sum(1) / n


def outside_mass(dist: np.ndarray, window: int) -> np.ndarray:
    """Mean mass outside the sinks and a recent window of ``window`` keys (the query itself included),
    from :func:`distance_mass` arrays ``(..., n)``."""
    return dist[..., window:].sum(-1)


def head_distances(lm, text_name: str, n_tokens: int, sinks: int) -> np.ndarray:
    """:func:`distance_mass` of every layer ``(layers, q_heads, n)`` on the shipped text (one forward, cached)."""
    from ..measure.passes import encode_for, reference_pass

    def measure() -> dict[str, np.ndarray]:
        enc = encode_for(lm, shipped_text(text_name), n_tokens)
        got: dict[int, torch.Tensor] = {}

        def observe(layer, weights, _keep) -> None:
            got[layer] = distance_mass(weights[0].float(), sinks)

        reference_pass(lm, enc, observers=[observe], for_budgets=False)
        return {"dist": torch.stack([got[layer] for layer in sorted(got)]).numpy()}

    return cached_arrays(f"duo-s{sinks}", lm, text_name, n_tokens, measure)["dist"]


@register
@dataclass(frozen=True)
class Duo(Allocator):
    name = "duo"
    summary = "A few retrieval heads keep every key; the rest keep sinks and a recent window (DuoAttention)."
    methods = ("DuoAttention ([Xiao et al., 2024](https://arxiv.org/abs/2410.10819)): KV heads are ranked, on a "
               "calibration text, by the attention mass outside their sinks and a recent window of the uniform "
               "size (kvpress's on-the-fly score). The top share f keep every key; the others keep S sinks and "
               "a recent window sized so that the total is spent. Needs policy sink_window (its S).")
    causal_only = True
    retrieval: float = field(default=0.25, metadata={"min": 0.0, "max": 1.0, "label": "f",
                                                     "help": "share of KV heads that keep every key"})
    calibration: str = field(default="auto", metadata={
        "choices": CALIBRATION_CHOICES, "label": "on",
        "help": "the shipped text the heads are ranked on (auto: one other than the text evaluated)"})

    def validate(self, budget: Budget, causal: bool) -> None:
        from ..policies import SinkWindow

        super().validate(budget, causal)
        if not budget.policy.reference and not isinstance(budget.policy, SinkWindow):
            raise BudgetError(f"allocator 'duo' gives each head its own rule (every key, or sinks plus a recent "
                              f"window), so it needs policy sink_window, not '{budget.policy.name}'")

    def plan(self, budget: Budget, setting: Setting) -> Budget:
        keys, sinks = int(budget.keys), budget.policy.sinks
        name = calibration_name(self.calibration, setting.ids, setting.lm, setting.n_tokens)
        dist = head_distances(setting.lm, name, calibration_size(setting.n_tokens)[0], sinks)  # (L, H, n_cal)
        group = setting.q_heads // setting.kv_heads
        outside = outside_mass(dist, max(0, keys - sinks)).reshape(setting.layers, setting.kv_heads, group).mean(-1)
        n_heads = setting.layers * setting.kv_heads
        n_retrieval = int(round(self.retrieval * n_heads))
        order = np.argsort(-outside, axis=None, kind="stable")[:n_retrieval]
        retrieval = np.zeros(n_heads, dtype=bool)
        retrieval[order] = True
        retrieval = retrieval.reshape(setting.layers, setting.kv_heads)
        row_keys = setting.row_keys
        every = int(row_keys.sum())
        target = setting.uniform_pairs(keys) // group  # per KV head group: pairs of one query head, summed
        left = target - n_retrieval * every
        streaming = n_heads - n_retrieval
        window = self._streaming_keys(left, streaming, row_keys, sinks, keys)
        n = int(row_keys.max())
        layer_keys = tuple(tuple(n if retrieval[layer, h // group] else window for h in range(setting.q_heads))
                           for layer in range(setting.layers))
        return replace(budget, layer_keys=layer_keys, plan={
            "retrieval_heads": [[int(a), int(b)] for a, b in zip(*np.nonzero(retrieval), strict=True)],
            "streaming_keys": window, "calibration": name, "outside_mass": np.round(outside, 6).tolist()})

    def _streaming_keys(self, left: int, streaming: int, row_keys: torch.Tensor, sinks: int, keys: int) -> int:
        """The streaming heads' K (sinks + window) whose pairs come nearest ``left`` (their share of the total)."""
        n = int(row_keys.max())
        if streaming == 0:
            return n
        per_head = left / streaming
        if per_head < float(torch.clamp(row_keys, max=sinks + 1).sum()):
            raise BudgetError(
                f"allocator 'duo': K={keys} is too small for f={self.retrieval:g}: the retrieval heads alone "
                f"spend nearly all of it, leaving the others less than S+1={sinks + 1} keys; lower f or raise K")
        pairs = torch.clamp(row_keys.view(1, -1), max=torch.arange(n + 1).view(-1, 1)).sum(-1)  # pairs(K), K=0..n
        k = int(torch.searchsorted(pairs.double(), torch.tensor([per_head], dtype=torch.float64)).clamp(max=n))
        if k > sinks + 1 and abs(float(pairs[k - 1]) - per_head) < abs(float(pairs[k]) - per_head):
            k -= 1
        return max(k, sinks + 1) if not math.isnan(per_head) else n
