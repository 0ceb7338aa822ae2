"""Pareto frontiers on hand-made points and sweep rows."""

import math

import numpy as np
import pytest

from attnviz.budget import Budget
from attnviz.engine.run import RowStats
from attnviz.measure import Compute, Quality, Row
from attnviz.measure.frontier import frontier_rows, pareto_front, row_label


def test_pareto_front_hand_points():
    cost = [1, 2, 3, 2, 4]
    quality = [0.5, 0.7, 0.9, 0.6, 0.9]  # (2, .6) loses to (2, .7); (4, .9) to (3, .9)
    assert pareto_front(cost, quality).tolist() == [True, True, True, False, False]
    # Lower is better: the same points read as losses.
    assert pareto_front(cost, quality, higher_is_better=False).tolist() == [True, False, False, False, False]


def test_pareto_front_ties():
    # Identical points are both efficient; same cost, worse quality loses; same quality, higher cost loses.
    assert pareto_front([1, 1, 1, 2], [0.5, 0.5, 0.4, 0.5]).tolist() == [True, True, False, False]
    assert pareto_front([3, 3], [1.0, 1.0], higher_is_better=False).tolist() == [True, True]


def test_pareto_front_missing_values_and_empty():
    nan = math.nan
    assert pareto_front([nan, 1, 2, 0], [1.0, 0.5, nan, nan]).tolist() == [False, True, False, False]
    assert pareto_front([], []).tolist() == []
    with pytest.raises(ValueError):
        pareto_front([1, 2], [1])
    assert pareto_front(np.array([1.0, 2.0]), np.array([math.inf, math.inf]), False).tolist() == [True, False]


def row(policy, density, kl, top1, keys=None, budget=None, sinks=None, seed=None, flops=0):
    return {"policy": policy, "keys": keys, "budget": budget, "sinks": sinks, "seed": seed, "density": density,
            "quality": {"kl": kl, "top1": top1, "ppl": None, "ppl_full": None, "mass_kept": 1.0,
                        "cos_embedding": None, "cos_tokens": None},
            "compute": {"attn_flops": flops, "kv_bytes": None}}


ROWS = [
    row("full", 1.0, 0.0, 1.0, flops=100),
    row("window", 0.3, 0.5, 0.7, keys=8, flops=30),
    row("topk", 0.25, 0.2, 0.6, budget=0.25, flops=50),
    row("random", 0.5, 0.6, 0.5, budget=0.5, seed=0, flops=50),
]


def test_frontier_rows_over_all_policies():
    points = frontier_rows(ROWS, x="density", y="kl")
    assert [p["efficient"] for p in points] == [True, False, True, False]
    assert [p["label"] for p in points] == ["full", "window K=8", "topk R=0.25", "random R=0.5 seed=0"]
    assert points[1] == {"x": 0.3, "y": 0.5, "policy": "window", "label": "window K=8", "efficient": False}
    # top1 is higher-is-better; flops from the compute block.
    points = frontier_rows(ROWS, x="attn_flops", y="top1")
    assert [p["efficient"] for p in points] == [True, True, False, False]


def test_frontier_rows_missing_values_and_errors():
    encoder = [row("full", 1.0, None, None), row("window", 0.5, None, None, keys=4)]
    points = frontier_rows(encoder, x="density", y="kl")
    assert [p["y"] for p in points] == [None, None] and not any(p["efficient"] for p in points)
    assert [p["x"] for p in frontier_rows(encoder, x="kv_bytes", y="top1")] == [None, None]
    with pytest.raises(ValueError):
        frontier_rows(ROWS, x="density", y="nonsense")
    with pytest.raises(ValueError):
        frontier_rows(ROWS, x="nonsense", y="kl")
    assert frontier_rows([], x="density", y="kl") == []


COMPUTE = Compute(attn_pairs=1, attn_pairs_full=1, attn_flops=1, attn_flops_full=1, total_flops=1, total_flops_full=1,
                  kv_bytes=None, kv_bytes_full=None, seconds=0.0)


@pytest.mark.parametrize("budget", [
    Budget("full"), Budget("window", keys=64), Budget("topk", ratio=0.25), Budget("topp", ratio=0.9),
    Budget.of("sink_window", keys=64, sinks=4), Budget.of("random", ratio=0.5, seed=3), Budget("h2o", keys=(1, 2, 3)),
])
def test_row_label_matches_budget_label(budget):
    as_json = Row(budget=budget, density=1.0, quality=Quality(), compute=COMPUTE, stats=RowStats()).to_json()
    assert row_label(as_json) == budget.label
