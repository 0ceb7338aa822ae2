"""The allocator contract, the registry, and the rounding every schedule shares."""

import pytest
import torch

from attnviz.allocators import ALLOCATORS, Setting, get_allocator, round_to_total
from attnviz.budget import Budget, BudgetError


def test_round_to_total_by_hand():
    assert round_to_total([12.0, 9.333, 6.667, 4.0], 32) == [12, 9, 7, 4]
    assert round_to_total([2.5, 2.5], 5) in ([3, 2], [2, 3])
    assert round_to_total([0.2, 0.2, 5.6], 6, low=1) == [1, 1, 4]  # parts raised to 1 are paid for by the largest
    with pytest.raises(ValueError):
        round_to_total([1.0, 1.0], 1)


def test_builtin_allocators_in_order():
    assert list(ALLOCATORS)[:6] == ["uniform", "pyramid", "heads", "price", "marginal", "duo"]
    for cls in ALLOCATORS.values():
        assert cls.summary and cls.methods


def test_budget_carries_its_allocator_into_label_and_json():
    b = Budget.of("topk", keys=8, allocator=get_allocator("pyramid", slope=0.25))
    assert b.label == "topk K=8 · pyramid s=0.25"
    row = b.to_json()
    assert row["allocator"] == "pyramid" and row["allocator_params"] == {"slope": 0.25}
    assert Budget.from_json(row) == b
    assert Budget("topk", keys=8).to_json()["allocator"] == "uniform"
    assert Budget("topk", keys=8).label == "topk K=8"  # uniform adds nothing to a label
    assert Budget.from_json({"policy": "topk", "keys": 8}) == Budget("topk", keys=8)  # rows from before allocators


def test_plan_is_not_part_of_a_budgets_identity():
    a = Budget("topk", keys=8, allocator="price")
    b = Budget("topk", keys=8, allocator="price", plan={"tau": 0.1})
    assert a == b and hash(a) == hash(b) and repr(a) == repr(b)


@pytest.mark.parametrize("policy,size,allocator,words", [
    ("topp", {"ratio": 0.9}, "pyramid", "probability mass"),
    ("h2o", {"keys": 8}, "heads", "one cache of its own size"),
    ("topk", {"ratio": 0.5}, "price", "one key count"),
    ("topk", {"keys": 8}, "duo", "needs policy sink_window"),
])
def test_unfit_combinations_are_one_line(policy, size, allocator, words):
    b = Budget(policy, allocator=allocator, **size)
    with pytest.raises(BudgetError, match=words) as err:
        b.allocator.validate(b, causal=True)
    assert "\n" not in str(err.value) and allocator in str(err.value)


def test_causal_only_allocators_refuse_an_encoder():
    for name in ("price", "marginal"):
        b = Budget("topk", keys=8, allocator=name)
        with pytest.raises(BudgetError, match="causal"):
            b.allocator.validate(b, causal=False)
    Budget("topk", keys=8, allocator="pyramid").allocator.validate(Budget("topk", keys=8, allocator="pyramid"), False)


def test_parameter_ranges_are_checked():
    b = Budget("topk", keys=8, allocator=get_allocator("pyramid", slope=1.5))
    with pytest.raises(BudgetError, match="allocator 'pyramid': parameter slope"):
        b.allocator.validate(b, causal=True)
    with pytest.raises(BudgetError, match="has no parameter 'nope'"):
        get_allocator("pyramid", nope=1)


def test_setting_counts_uniform_pairs():
    s = Setting(layers=2, q_heads=3, kv_heads=1, causal=True, row_keys=torch.arange(1, 6))
    assert s.uniform_pairs(2) == (1 + 2 + 2 + 2 + 2) * 2 * 3
