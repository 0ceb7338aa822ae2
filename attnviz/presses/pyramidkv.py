"""``pyramidkv`` (kvpress PyramidKVPress; Cai et al. 2024): SnapKV's scores, a larger cache in lower layers."""

from __future__ import annotations

from dataclasses import dataclass, field

from .base import PressView, top_positions
from .registry import register
from .snapkv import SnapKV


def layer_budget(context: int, ratio: float, window: int, beta: int, layer: int, layers: int) -> int:
    """kvpress's PyramidKV budget for one layer (its formula, after KVCache-Factory); uniform
    ``round(C·(1 − r))`` where the pyramid does not fit (short contexts)."""
    capacity = window + context * (1 - ratio)
    min_num = (capacity - window) / beta
    max_num = (capacity - window) * 2 - min_num
    if max_num >= context - window:
        max_num = context - window
        min_num = (capacity - window) * 2 - max_num
    if not (context >= max_num >= min_num >= window):
        return round(context * (1 - ratio))
    steps = (max_num - min_num) / (layers - 1)
    return round(max_num - layer * steps)


@register
@dataclass(frozen=True)
class PyramidKV(SnapKV):
    """SnapKV's fields, scores and checks (as kvpress's PyramidKVPress subclasses SnapKVPress), other budgets."""

    name = "pyramidkv"
    kvpress_class = "PyramidKVPress"
    summary = "SnapKV's votes, with more cache for the lower layers than the upper ones (PyramidKV)."
    methods = ("PyramidKV ([Cai et al., 2024](https://arxiv.org/abs/2406.02069)), as kvpress's PyramidKVPress: "
               "SnapKV's scores; layer budgets fall linearly from the bottom layer to the top (steepness beta), "
               "and fall back to a uniform budget where the pyramid does not fit (short contexts).")
    beta: int = field(default=20, metadata={"min": 1, "label": "β"})

    def keep(self, view: PressView, ratio: float):
        if ratio == 0:
            return super().keep(view, ratio)
        n = layer_budget(view.context, ratio, self.window_size, self.beta, view.layer, view.layers)
        return top_positions(self.score(view), max(1, n))
