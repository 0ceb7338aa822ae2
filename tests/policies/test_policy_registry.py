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
