"""``streaming_llm`` (kvpress StreamingLLMPress; Xiao et al. 2023): the first ``n_sink`` positions and the most
recent ones."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .base import Press, kept_count
from .registry import register


@register
@dataclass(frozen=True)
class StreamingLLM(Press):
    name = "streaming_llm"
    kvpress_class = "StreamingLLMPress"
    summary = "Keeps the first n_sink tokens (attention sinks) and the most recent ones."
    methods = ("StreamingLLM ([Xiao et al., 2023](https://arxiv.org/abs/2309.17453)), as kvpress's "
               "StreamingLLMPress: the n_sink first positions and the most recent, removing the ones in between.")
    n_sink: int = field(default=4, metadata={"min": 0, "help": "first positions always kept"})

    def min_context(self) -> int:
        return self.n_sink + 1

    def short_context_reason(self) -> str:
        return f" (more than its n_sink={self.n_sink} sinks)"

    def keep(self, view, ratio):
        if ratio == 0:
            return super().keep(view, ratio)
        c = view.context
        pruned = c - kept_count(c, ratio)
        keep = torch.ones(view.keys.shape[0], c, dtype=torch.bool)
        keep[:, self.n_sink:self.n_sink + pruned] = False  # exactly kvpress's ones: its topk takes all of them
        return keep
