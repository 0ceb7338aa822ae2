"""``full``: every key the model's own mask allows (the reference)."""

from .base import Policy


class Full(Policy):
    name = "full"
    summary = "Every allowed key: the model as trained, the reference for all quality numbers."
    scores_all_pairs = False  # scored pairs == kept pairs == allowed pairs

    def validate(self, budget, causal):  # a size is meaningless here, so none is checked
        pass

    def exact_prefix(self, budget, n_tokens):
        return n_tokens  # every row

    def keep(self, scores, allowed, budget, view):
        return None
