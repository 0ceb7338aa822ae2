"""The Spend page's material: totals, the demand curve's points, starved rows, averaged points, sentences."""

import numpy as np
import pytest

from attnviz.allocators.demand import DemandBuilder
from attnviz.teaching.spend import (
    averaged_points,
    compare_sentence,
    demand_points,
    floor_sentence,
    frontier_totals,
    mass_sentence,
    starved_rows,
    uniform_keys_per_query,
)


def test_frontier_totals_are_powers_of_two_up_to_a_quarter_of_the_text_plus_the_page_s_own():
    assert frontier_totals(128, 8) == [4, 8, 16, 32]
    assert frontier_totals(256, 5) == [5, 8, 16, 32, 64]
    assert frontier_totals(11, 4) == [1, 2, 4]
    assert frontier_totals(11, 11) == [1, 2]  # K = n is full attention: not a point of the frontier


def test_uniform_keys_per_query_by_hand():
    assert uniform_keys_per_query(4, 2) == pytest.approx((1 + 2 + 2 + 2) / 4)
    assert uniform_keys_per_query(4, 2, causal=False) == 2


def _demand():
    """One layer, one head, two rows of two keys each: (0.7, 0.3) and (0.6, 0.4)."""
    import torch

    probs = torch.tensor([[[0.7, 0.3], [0.6, 0.4]]])
    allowed = torch.ones(1, 2, 2, dtype=torch.bool)
    b = DemandBuilder(1)
    b.add(0, probs, allowed)
    return b.build()


def test_demand_points_fall_with_the_price_and_count_the_floor():
    prices, per_query = demand_points(_demand(), floor_keys=0, query_rows=2, lowest=0.01, points=5)
    assert list(prices) == pytest.approx([0.01, 0.0316, 0.1, 0.316, 1.0], rel=1e-3)
    assert per_query[0] == pytest.approx(2.0)  # every key is worth 0.01: 4 keys over 2 rows
    assert per_query[3] == pytest.approx(1.5)  # at 0.316 only the 0.3 goes: 3 keys over 2 rows
    assert per_query[-1] == pytest.approx(0.0)  # nothing is worth 1
    assert all(np.diff(per_query) <= 1e-9)
    _, floored = demand_points(_demand(), floor_keys=1, query_rows=2, lowest=0.01, points=5)
    assert floored[-1] == pytest.approx(1.0)  # the floor: each row keeps its best key whatever the price


def test_starved_rows_are_those_whose_best_key_is_below_the_price():
    demand = _demand()
    assert starved_rows(demand, 0.5, 2) == pytest.approx(0.0)  # both rows' best keys (0.7, 0.6) are worth 0.5
    assert starved_rows(demand, 0.65, 2) == pytest.approx(0.5)  # row 1's best (0.6) is not
    assert starved_rows(demand, 0.9, 2) == pytest.approx(1.0)


def test_averaged_points_take_the_mean_and_range_and_rank_the_means():
    def row(d, kl):
        return {"density": d, "quality": {"kl": kl}}

    per_text = [[row(0.1, 1.0), row(0.1, 0.4)], [row(0.2, 2.0), row(0.2, 0.6)]]
    points = averaged_points(per_text, ["uniform", "price"], ["a", "b"])
    assert [p["policy"] for p in points] == ["uniform", "price"]
    assert points[0]["x"] == pytest.approx(0.15) and points[0]["y"] == pytest.approx(1.5)
    assert (points[1]["y_lo"], points[1]["y_hi"]) == pytest.approx((0.4, 0.6))
    assert [p["efficient"] for p in points] == [False, True]


def test_the_sentences_carry_the_numbers():
    text = compare_sentence("price", 8, 0.1, 0.2, 0.061, 0.062, wins=[8, 16], losses=[2])
    assert "K = 8" in text and "50% less" in text and "helps here" in text
    assert "beats uniform at K = 8, 16 and loses to it at K = 2" in text
    assert "hurts here" in compare_sentence("price", 2, 0.3, 0.2, 0.02, 0.02)
    floor = floor_sentence(0.093, 2, 0.0245, 0.167, 1.0)
    assert "9.3% of all queries" in floor and "best 2 first" in floor and "16.7%" in floor
    assert "τ" not in floor_sentence(None, None, None, 0.1, 0.2)
    calm = floor_sentence(0.0, 1, 0.0371, 0.05, 0.43, scarce=(0.2, 0.31))
    assert "costs little" in calm and "(τ = 0.2) 31.0% of all queries would keep nothing" in calm
    assert "yet the one keeping more mass drifts more" in mass_sentence("heads", 0.98, 0.95, 0.3, 0.2)
    assert "also drifts less" in mass_sentence("heads", 0.98, 0.95, 0.1, 0.2)
