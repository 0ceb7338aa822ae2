"""Measurement: run a model on a text under budgets and measure quality and compute together.

Two steps, so an app can cache the first and rerun only the second when a slider moves:

* :func:`reference_pass` (:mod:`.reference`) -- full attention once, through our own kernel;
* :func:`budget_pass` (:mod:`.passes`) -- one or more budgets, packed or batched; each gives a
  :class:`Row` (:mod:`.rows`) with measured :class:`Quality` (:mod:`.metrics`) and counted
  :class:`Compute` (:mod:`.compute`).

:func:`sweep` does both for a text and returns the JSON object the command line prints.
:mod:`.frontier` finds the efficient rows; :mod:`.scaling` counts attention's share at any length.
"""

from .compute import Compute
from .metrics import Quality
from .passes import budget_pass, default_batch_size, reference_and_budgets, shared_prefix, sweep, validate_budgets
from .reference import Reference, attention_weights, encode_for, reference_pass
from .rows import Row

__all__ = ["Reference", "Row", "Quality", "Compute", "attention_weights", "reference_pass", "budget_pass",
           "reference_and_budgets", "sweep", "validate_budgets", "encode_for", "default_batch_size", "shared_prefix"]
