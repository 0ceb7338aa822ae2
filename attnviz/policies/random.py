"""``random``: per (layer, query head, query), a uniformly random set of allowed
keys of the same size ``topk`` would keep -- the control that shows whether a
policy beats chance.  Reproducible through the budget's ``seed``."""

import torch

from .base import Policy, keep_top, row_counts


class RandomKeys(Policy):
    name = "random"
    summary = "Each query keeps K keys chosen at random: the baseline a good policy must beat."
    scores_all_pairs = False

    def keep(self, scores, allowed, budget, view):
        # Seeded per layer, so a layer's choice does not depend on the others.
        gen = torch.Generator().manual_seed(budget.seed * 1_000_003 + view.layer)
        draws = torch.rand(scores.shape, generator=gen)
        return keep_top(draws, allowed, row_counts(allowed, budget))
