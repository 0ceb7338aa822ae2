"""The policy registry: names, and the error for an unknown one."""

import pytest

from attnviz.budget import Budget, BudgetError
from attnviz.engine.run import BudgetRun
from attnviz.policies import POLICIES, get_policy

KNOWN = ["full", "topk", "topp", "window", "sink_window", "h2o", "random"]


def test_every_specified_policy_is_registered():
    assert set(KNOWN) <= set(POLICIES)
    for name in KNOWN:
        assert get_policy(name).name == name


def test_unknown_policy_lists_the_known_ones():
    with pytest.raises(BudgetError) as err:
        get_policy("nope")
    msg = str(err.value)
    assert "nope" in msg
    for name in KNOWN:
        assert name in msg


def test_unknown_policy_in_a_run():
    with pytest.raises(BudgetError, match="unknown policy 'lru'"):
        BudgetRun([Budget("lru", keys=3)])


@pytest.mark.parametrize("name", [n for n, cls in POLICIES.items() if cls.fills_counts or cls.keeps_every_row])
def test_a_policy_that_says_it_keeps_every_row_does(name):
    """The engine trusts fills_counts / keeps_every_row and skips its empty-row check: hold the policies to it."""
    import torch

    from attnviz.policies import LayerView

    n = 12
    allowed = torch.ones(n, n, dtype=torch.bool).tril().unsqueeze(0)
    scores = torch.randn(4, n, n, generator=torch.Generator().manual_seed(3)).masked_fill(~allowed, float("-inf"))
    size = {"ratio": 0.05} if POLICIES[name].ratio_only else {"keys": POLICIES[name]().min_keys}
    budget = Budget(name, **size)
    keep = POLICIES[name]().keep(scores, allowed, budget, LayerView.for_budget(0, True, 2, allowed, budget))
    assert keep is None or bool(keep.expand(4, n, n).any(-1).all())
