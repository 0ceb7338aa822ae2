"""``tova`` (kvpress TOVAPress; Oren et al. 2024): the context's last query decides, for every head alike."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Press, pad_max
from .registry import register


@register
@dataclass(frozen=True)
class TOVA(Press):
    name = "tova"
    kvpress_class = "TOVAPress"
    summary = "Keeps the keys the context's last token attends to most, averaged over all heads (TOVA)."
    methods = ("TOVA ([Oren et al., 2024](https://arxiv.org/abs/2401.06104)), as kvpress's TOVAPress: the last "
               "query's attention to each earlier key, averaged over all query heads (every KV head keeps the "
               "same positions); the last position is always kept.")

    def min_context(self) -> int:
        return 2

    def score(self, view):
        votes = view.window_attention(1)[:, 0, :-1].mean(0, keepdim=True)  # (1, C - 1), all heads alike
        return pad_max(votes.expand(view.keys.shape[0], -1), right=1)
