"""Budget policies.  A policy is a small frozen dataclass whose fields are its parameters, registered by name:

    @register
    @dataclass(frozen=True)
    class EveryOther(Policy):
        name = "every_other"
        summary = "Keeps every other key."
        phase: int = field(default=0, metadata={"min": 0, "max": 1})

        def keep(self, scores, allowed, budget, view): ...

Built-in ones live one per file here; a user's own live in modules named in ``ATTNVIZ_PLUGINS``
(:func:`attnviz.plugins.load_plugins`).
"""

from __future__ import annotations

from .base import LayerView, Policy, by_rows, keep_top, kth_largest, nearness, row_counts
from .registry import POLICIES, get_policy, register

# Built-in policies register themselves on import, in this order (the order of lists in the app).
from .full import Full  # noqa: E402  isort: skip
from .topk import TopK  # noqa: E402  isort: skip
from .topp import TopP  # noqa: E402  isort: skip
from .window import Window  # noqa: E402  isort: skip
from .sink_window import SinkWindow  # noqa: E402  isort: skip
from .h2o import H2O  # noqa: E402  isort: skip
from .random import RandomKeys  # noqa: E402  isort: skip

__all__ = ["POLICIES", "get_policy", "register", "Policy", "LayerView", "Full", "TopK", "TopP", "Window",
           "SinkWindow", "H2O", "RandomKeys", "by_rows", "keep_top", "kth_largest", "nearness", "row_counts"]
