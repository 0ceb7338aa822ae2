"""``snapkv`` (kvpress SnapKVPress; Li et al. 2024): the context's last ``window_size`` queries vote."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..budget import BudgetError
from .base import Press, PressView, pad_max
from .registry import register


def check_kernel(name: str, kernel: int) -> None:
    """Raise :class:`BudgetError` for an even pooling width: zero padding of ``kernel // 2`` keeps the scores'
    length only for an odd one (kvpress pools the same way)."""
    if kernel % 2 == 0:
        raise BudgetError(f"press '{name}': kernel_size must be odd (pooling would lengthen the scores), got {kernel}")


def window_votes(view: PressView, window: int, kernel: int) -> torch.Tensor:
    """SnapKV's scores ``(kv_heads, C)``: the last ``window`` queries' mean attention to each earlier key,
    smoothed by average pooling (zeros padded, as ``avg_pool1d``), averaged over each KV head's query heads;
    the window itself always kept."""
    c = view.context
    votes = view.window_attention(window)[..., :c - window].mean(dim=-2)  # (q_heads, C - w)
    votes = F.avg_pool1d(votes.unsqueeze(0), kernel_size=kernel, padding=kernel // 2, stride=1)[0]
    votes = votes.view(view.keys.shape[0], view.group, c - window).mean(1)
    return pad_max(votes, right=window)


@register
@dataclass(frozen=True)
class SnapKV(Press):
    name = "snapkv"
    kvpress_class = "SnapKVPress"
    summary = "The context's last queries vote for the keys they attend to; those are kept (SnapKV)."
    methods = ("SnapKV ([Li et al., 2024](https://arxiv.org/abs/2404.14469)), as kvpress's SnapKVPress: the "
               "last window_size queries' mean attention to each earlier key, average-pooled over kernel_size "
               "positions and averaged over a KV head's query heads; the window itself is always kept.")
    window_size: int = field(default=64, metadata={"min": 1, "label": "w", "help": "the voting queries"})
    kernel_size: int = field(default=5, metadata={"min": 1, "help": "pooling width (odd)"})

    def validate(self, context: int) -> None:
        super().validate(context)
        check_kernel(self.name, self.kernel_size)

    def min_context(self) -> int:
        return self.window_size + 1

    def short_context_reason(self) -> str:
        return f" (longer than its window_size={self.window_size})"

    def score(self, view):
        return window_votes(view, self.window_size, self.kernel_size)
