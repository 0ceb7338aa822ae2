"""A user's own press (imported through ATTNVIZ_PLUGINS): keeps the oldest positions."""

from dataclasses import dataclass

import torch

from attnviz.presses import Press, register


@register
@dataclass(frozen=True)
class Oldest(Press):
    name = "oldest"                              # --press oldest
    summary = "Keeps the oldest positions."

    def score(self, view):
        return -torch.arange(view.context, dtype=torch.float32).expand(view.keys.shape[0], -1)
