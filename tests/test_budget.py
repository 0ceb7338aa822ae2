"""Tests for budget sizes (``attnviz.budget``): per-row keep counts and validation.

Spec: ratio R in (0, 1]: per row keep ``max(1, ceil(R * |A_i| - 1e-9))`` keys;
key count K: per row ``min(K, |A_i|)``.  Expected counts below are worked out by hand.
"""

from __future__ import annotations

import math

import pytest
import torch

from attnviz.budget import Budget, BudgetError, keep_counts
from attnviz.engine.run import BudgetRun
from attnviz.policies import LayerView, get_policy


def _counts(allowed: list[int], **budget) -> list[list[int]]:
    return keep_counts(torch.tensor([allowed]), Budget(policy="topk", **budget)).tolist()


# --------------------------------------------------------------------------- ratio


def test_ratio_one_keeps_every_allowed_key():
    assert _counts([1, 2, 3, 7, 100], ratio=1.0) == [[1, 2, 3, 7, 100]]


def test_tiny_ratio_keeps_at_least_one_key():
    assert _counts([1, 2, 5, 1000], ratio=1e-6) == [[1, 1, 1, 1]]


def test_ratio_rounds_up():
    # 0.5 * 3 = 1.5 -> 2 ; 0.5 * 5 = 2.5 -> 3 ; 0.3 * 4 = 1.2 -> 2 ; 0.3 * 1 = 0.3 -> 1
    assert _counts([3, 5], ratio=0.5) == [[2, 3]]
    assert _counts([4, 1], ratio=0.3) == [[2, 1]]


def test_ratio_times_count_exactly_integer_is_not_rounded_up():
    # 0.25 * 8 = 2 exactly -> 2 (not 3); 0.25 * 4 = 1; 0.5 * 6 = 3
    assert _counts([8, 4], ratio=0.25) == [[2, 1]]
    assert _counts([6], ratio=0.5) == [[3]]
    # Products that are integers on paper but not in binary floating point:
    # 0.07 * 100 = 7.000000000000001, 0.28 * 25 = 7.000000000000001, 0.56 * 50 = 28.000000000000004.
    assert 0.07 * 100 > 7 and 0.28 * 25 > 7 and 0.56 * 50 > 28  # the premise of this test
    assert _counts([100], ratio=0.07) == [[7]]
    assert _counts([25], ratio=0.28) == [[7]]
    assert _counts([50], ratio=0.56) == [[28]]


def test_ratio_against_formula_on_many_rows():
    rows = list(range(1, 41))
    for r in (0.05, 0.1, 0.2, 0.25, 0.3, 1 / 3, 0.5, 0.6, 0.7, 0.9, 1.0):
        expected = [max(1, math.ceil(r * a - 1e-9)) for a in rows]
        assert _counts(rows, ratio=r) == [expected], r


def test_ratio_row_with_no_allowed_key_keeps_nothing():
    # "never above |A_i|": a fully padded row keeps 0 keys.
    assert _counts([0, 4], ratio=0.5) == [[0, 2]]


# --------------------------------------------------------------------------- key count


def test_key_count_is_capped_by_allowed():
    assert _counts([1, 2, 3, 4, 10, 0], keys=3) == [[1, 2, 3, 3, 3, 0]]


def test_key_count_one():
    assert _counts([1, 5, 9], keys=1) == [[1, 1, 1]]


def test_per_head_tuple_keys():
    # 3 heads with K = 1, 3, 5 over rows allowing 2, 4, 6 keys.
    out = keep_counts(torch.tensor([[2, 4, 6]]), Budget(policy="topk", keys=(1, 3, 5)))
    assert out.tolist() == [[1, 1, 1], [2, 3, 3], [2, 4, 5]]


def test_per_head_allowed_counts_with_int_keys():
    out = keep_counts(torch.tensor([[1, 5], [3, 2]]), Budget(policy="topk", keys=2))
    assert out.tolist() == [[1, 2], [2, 2]]


def test_layer_keys_resolve_per_layer():
    b = Budget(policy="topk", layer_keys=(2, (1, 4)))
    assert b.for_layer(0).keys == 2 and b.for_layer(0).layer_keys is None
    assert keep_counts(torch.tensor([[5, 1]]), b.for_layer(0)).tolist() == [[2, 1]]
    assert keep_counts(torch.tensor([[5, 1]]), b.for_layer(1)).tolist() == [[1, 1], [4, 1]]
    # A budget without per-layer keys is the same in every layer.
    plain = Budget(policy="topk", keys=3)
    assert plain.for_layer(7) == plain


def test_budget_is_hashable_value():
    assert hash(Budget("topk", keys=(1, 2))) == hash(Budget("topk", keys=(1, 2)))
    assert Budget("topk", keys=2) != Budget("topk", keys=3)


def test_counts_used_by_a_policy_end_to_end():
    """topk with R = 0.25 on a causal row set of 8: |A_i| = i + 1 -> 1,1,1,1,2,2,2,2 keys."""
    n = 8
    allowed = torch.ones(n, n, dtype=torch.bool).tril().unsqueeze(0)
    scores = torch.randn(1, n, n).masked_fill(~allowed, float("-inf"))
    budget = Budget(policy="topk", ratio=0.25)
    view = LayerView.for_budget(0, True, 1, allowed, budget)
    keep = get_policy("topk").keep(scores, allowed, budget, view)
    assert keep.sum(-1).tolist() == [[1, 1, 1, 1, 2, 2, 2, 2]]


# --------------------------------------------------------------------------- validation


BAD_BUDGETS = [
    pytest.param({"ratio": 0.0}, id="ratio-0"),
    pytest.param({"ratio": -0.5}, id="ratio-negative"),
    pytest.param({"ratio": 1.0000001}, id="ratio-above-1"),
    pytest.param({"ratio": 2.0}, id="ratio-2"),
    pytest.param({"ratio": float("nan")}, id="ratio-nan"),
    pytest.param({"ratio": float("inf")}, id="ratio-inf"),
    pytest.param({"keys": 0}, id="keys-0"),
    pytest.param({"keys": -3}, id="keys-negative"),
    pytest.param({"keys": (2, 0)}, id="per-head-keys-0"),
    pytest.param({"layer_keys": (4, 0)}, id="layer-keys-0"),
    pytest.param({"layer_keys": (4, (1, 0))}, id="layer-per-head-keys-0"),
    pytest.param({"keys": 4, "ratio": 0.5}, id="both"),
    pytest.param({"layer_keys": (4,), "ratio": 0.5}, id="layer-keys-and-ratio"),
    pytest.param({}, id="neither"),
]


@pytest.mark.parametrize("policy", ["topk", "window", "random"])
@pytest.mark.parametrize("size", BAD_BUDGETS)
def test_invalid_sizes_raise_budget_error(policy, size):
    budget = Budget(policy=policy, **size)
    with pytest.raises(BudgetError):
        budget.check_size()
    with pytest.raises(BudgetError):
        get_policy(policy).validate(budget, True)
    with pytest.raises(BudgetError):
        BudgetRun([budget])


def test_budget_error_is_a_value_error_with_a_message():
    assert issubclass(BudgetError, ValueError)
    with pytest.raises(BudgetError, match=r"\(0, 1\]"):
        Budget("topk", ratio=1.5).check_size()
    with pytest.raises(BudgetError, match="at least 1"):
        Budget("topk", keys=0).check_size()
    with pytest.raises(BudgetError, match="exactly one"):
        Budget("topk").check_size()


@pytest.mark.parametrize(
    "size",
    [{"ratio": 1.0}, {"ratio": 1e-9}, {"ratio": 0.25}, {"keys": 1}, {"keys": 10**6}, {"keys": (1, 2, 3)},
     {"layer_keys": (1, (2, 3))}],
)
def test_valid_sizes_pass(size):
    Budget(policy="topk", **size).check_size()
    get_policy("topk").validate(Budget(policy="topk", **size), True)


def test_full_needs_no_size():
    Budget(policy="full").check_size()
    get_policy("full").validate(Budget(policy="full"), True)
    get_policy("full").validate(Budget(policy="full"), False)


@pytest.mark.parametrize("allocator", ["pyramid", "heads", "price", "marginal", "duo"])
def test_the_reference_spends_nothing_whatever_its_allocator(allocator):
    """Found by tests/fuzz: ``full`` keeps every key, so an allocator has nothing to plan or count for it; the
    engine used to ask duo for the policy's sinks and the others for int(None) keys."""
    for budget in (Budget("full", allocator=allocator), Budget("full", keys=3, allocator=allocator)):
        assert budget.allocator.uniform
        assert budget.label == "full"


def test_layer_keys_of_the_wrong_length_are_one_line():
    """A budget cannot know its model's depth: too few per-layer counts failed with an IndexError inside a forward,
    too many were silently cut (found by the fuzz, issue #18)."""
    budget = Budget("topk", layer_keys=(4, 4, 4))
    budget.check_layers(3)
    for layers in (2, 30):
        with pytest.raises(BudgetError, match="one count per layer: got 3, the model has"):
            budget.check_layers(layers)
    with pytest.raises(BudgetError, match="one count per layer: got 3, asked for layer 4"):
        budget.for_layer(3)
