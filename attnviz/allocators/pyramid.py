"""``pyramid`` (PyramidKV, Cai et al. 2024): a depth schedule, more keys in the lower layers.

Layer ``l`` of ``L`` gets ``K_l = K·(1 + s·(1 − 2l/(L−1)))``, at least 1, rounded
(largest remainders) so that ``Σ K_l = L·K`` exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..budget import Budget
from .base import Allocator, Setting, round_to_total
from .registry import register


def pyramid_keys(keys: int, layers: int, slope: float) -> tuple[int, ...]:
    """Per-layer key counts ``(layers,)`` of the schedule, summing to ``layers * keys``."""
    if layers == 1:
        return (keys,)
    raw = [keys * (1 + slope * (1 - 2 * layer / (layers - 1))) for layer in range(layers)]
    return tuple(round_to_total(raw, layers * keys, low=1))


@register
@dataclass(frozen=True)
class Pyramid(Allocator):
    name = "pyramid"
    summary = "A depth schedule: more keys in the lower layers, fewer in the upper ones (PyramidKV)."
    methods = ("PyramidKV ([Cai et al., 2024](https://arxiv.org/abs/2406.02069)): layer l of L keeps "
               "K_l = K·(1 + s·(1 − 2l/(L−1))) keys per row, at least 1, rounded so that ΣK_l = L·K. A fixed "
               "prior: s > 0 favours the lower layers, s < 0 the upper ones.")
    slope: float = field(default=0.5, metadata={"min": -0.99, "max": 0.99, "label": "s",
                                                "help": "how much more the lowest layer gets than the mean "
                                                        "(the top layer gets as much less)"})

    def plan(self, budget: Budget, setting: Setting) -> Budget:
        layer_keys = pyramid_keys(int(budget.keys), setting.layers, self.slope)
        return replace(budget, layer_keys=layer_keys, plan={"layer_keys": list(layer_keys)})
