"""The README's plug-in example, exactly as a user would write it (imported through ATTNVIZ_PLUGINS)."""

from dataclasses import dataclass, field

import torch

from attnviz.policies import Policy, register


@register
@dataclass(frozen=True)
class EveryOther(Policy):
    name = "every_other"                         # --policy every_other
    summary = "Keeps every other key."           # one line for the app and --help
    scores_all_pairs = False
    phase: int = field(default=0, metadata={"min": 0, "max": 1, "help": "which keys: even (0) or odd (1)"})

    def keep(self, scores, allowed, budget, view):
        cols = torch.arange(allowed.shape[-1]) % 2 == self.phase
        return allowed & cols.view(1, 1, -1)
