"""The engine: our attention kernel, its registration with transformers, and budgeted runs.

* :mod:`.kernel` -- scaled dot-product attention with masks and keep masks.
* :mod:`.hf_attention` -- registers it with transformers as ``attn_implementation="attnviz"``.
* :mod:`.run` -- :class:`BudgetRun`, the per-call budgets (the batched runner);
  :mod:`.packed` the packed runner; :mod:`.apply` one layer's budget on one sequence; :mod:`.stats` the counts.
* :mod:`.trunk` -- running a model's trunk with a run and a KV cache; :mod:`.workers` the side-by-side pool.
* :mod:`.linear` -- the dense layers' products through oneDNN (faster float32 than MKL's on AMD processors).
"""

from .packed import Segment
from .run import BudgetRun
from .stats import RowStats

__all__ = ["BudgetRun", "RowStats", "Segment"]
