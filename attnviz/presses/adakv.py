"""``adakv`` (kvpress AdaKVPress; Feng et al. 2024): a scorer's positions chosen across a layer's KV heads."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .base import Press, PressView, kept_count
from .registry import PRESSES, register


@register
@dataclass(frozen=True)
class AdaKV(Press):
    name = "adakv"
    kvpress_class = "AdaKVPress"
    summary = "A scorer's best positions chosen across all of a layer's KV heads, each head keeping a share."
    methods = ("Ada-KV ([Feng et al., 2024](https://arxiv.org/abs/2407.11550)), as kvpress's AdaKVPress around a "
               "scorer press: each KV head first keeps its best int(α·kept) positions; the layer's lowest "
               "H_kv·(C − kept) scores over all heads together are then removed, so heads keep different numbers.")
    head_wise = True
    scorer: str = field(default="snapkv", metadata={
        "choices": ("snapkv", "tova", "knorm", "expected_attention", "random", "streaming_llm"),
        "help": "the press whose scores are pooled"})
    alpha_safeguard: float = field(default=0.2, metadata={"min": 0.0, "max": 1.0, "label": "α",
                                                          "help": "share of its kept positions each head is sure of"})

    def _scorer(self) -> Press:
        return PRESSES.get(self.scorer)

    def min_context(self) -> int:
        return self._scorer().min_context()

    def short_context_reason(self) -> str:
        return self._scorer().short_context_reason()

    def score(self, view):
        return self._scorer().score(view)

    def keep(self, view: PressView, ratio: float):
        if ratio == 0:
            return super().keep(view, ratio)
        scores = self.score(view).clone()  # (kv_heads, C)
        heads, c = scores.shape
        n_kept = kept_count(c, ratio)
        n_safe = int(n_kept * self.alpha_safeguard)
        if n_safe:
            top = scores.topk(n_safe, dim=-1).indices
            scores.scatter_(-1, top, torch.finfo(scores.dtype).max)
        n_pruned = heads * (c - n_kept)
        keep = torch.ones(heads * c, dtype=torch.bool)
        if n_pruned:
            keep[torch.topk(-scores.reshape(-1), n_pruned).indices] = False
        return keep.view(heads, c)
