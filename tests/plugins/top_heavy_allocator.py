"""The README's allocator plug-in example, exactly as a user would write it (imported through ATTNVIZ_PLUGINS)."""

from dataclasses import dataclass, field, replace

from attnviz.allocators import Allocator, register, round_to_total


@register
@dataclass(frozen=True)
class TopHeavy(Allocator):
    name = "top_heavy"                                   # --allocator top_heavy
    summary = "The upper half of the layers gets a share s of the total."
    share: float = field(default=0.75, metadata={"min": 0.05, "max": 0.95, "label": "s",
                                                 "help": "share of the total for the upper half"})

    def plan(self, budget, setting):
        layers, total = setting.layers, setting.layers * budget.keys
        low = layers // 2
        raw = [total * (1 - self.share) / low] * low + [total * self.share / (layers - low)] * (layers - low)
        keys = tuple(round_to_total(raw, total))
        return replace(budget, layer_keys=keys, plan={"layer_keys": list(keys)})
