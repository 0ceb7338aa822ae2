"""Allocation figures: the map's scale and orientation, the demand curve's lines, value curves, the frontier."""

import numpy as np
import pytest

from attnviz.figures.allocation import allocation_map, allocator_frontier, demand_curve, value_curves


def test_the_allocation_map_is_layers_by_heads_darker_for_more_on_a_given_scale():
    share = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    fig = allocation_map(share, "price", zmax=0.8)
    hm = fig.data[0]
    assert hm.type == "heatmap" and np.asarray(hm.z).shape == (2, 3)
    assert hm.zmin == 0 and hm.zmax == 0.8  # two maps share a scale when given one zmax
    assert list(hm.y) == ["layer 1", "layer 2"] and list(hm.x) == ["head 1", "head 2", "head 3"]
    assert fig.layout.yaxis.autorange == "reversed"  # layer 1 (the input) at the top
    assert hm.colorscale[0][1] in ("rgb(247,251,255)", "#f7fbff")  # Blues: 0 is white, more is darker
    assert allocation_map(share, "own").data[0].zmax == pytest.approx(0.6)
    with pytest.raises(ValueError, match="layers, heads"):
        allocation_map(np.ones(3), "bad")


def test_the_demand_curve_marks_the_total_and_both_prices():
    prices = np.logspace(-4, 0, 5)
    kept = np.array([9.0, 6.0, 3.0, 1.5, 1.0])
    fig = demand_curve(prices, kept, total_keys=3.0, price_found=0.01, price_set=0.1, floor_keys=1)
    names = [t.name for t in fig.data]
    assert names[0].startswith("keys kept at each price (each query's best 1 first)")
    assert "the total: 3 keys per query" in names
    assert "the price that spends the total: 0.01" in names and "your price: 0.1" in names
    assert fig.layout.xaxis.type == "log"
    assert len(demand_curve(prices, kept, 3.0).data) == 2  # no price marked when none is given
    with pytest.raises(ValueError, match="above 0"):
        demand_curve(np.array([0.0, 1.0]), np.array([1.0, 1.0]), 1.0)


def test_value_curves_draw_one_line_per_layer_and_mark_the_allocation():
    keys = np.array([1, 2, 4, 8])
    kl = np.array([[1.0, 0.5, 0.2, 0.0], [2.0, 1.0, 0.4, 0.1]])
    fig = value_curves(keys, kl, layer_keys=[2, 4], water_level=0.05)
    assert [t.name for t in fig.data] == ["layer 1", "layer 2", "keys given to each layer"]
    assert min(fig.data[0].y) > 0  # KL 0 is lifted onto the log axis
    assert list(fig.data[2].y) == pytest.approx([0.5, 0.4])  # each layer's mark sits on its own curve
    assert "water level" in fig.layout.title.text
    with pytest.raises(ValueError, match="curve_kl"):
        value_curves(keys, kl[:, :3])


def test_the_allocator_frontier_rings_efficient_points_and_shows_the_range():
    points = [{"x": 0.1, "y": 0.5, "policy": "uniform", "label": "K=4", "efficient": False, "y_lo": 0.4, "y_hi": 0.7},
              {"x": 0.1, "y": 0.3, "policy": "price", "label": "K=4", "efficient": True, "y_lo": 0.2, "y_hi": 0.3}]
    fig = allocator_frontier(points)
    by_name = {t.name: t for t in fig.data}
    assert {"uniform", "price", "efficient (Pareto) point"} <= set(by_name)
    assert list(by_name["uniform"].error_y.array) == pytest.approx([0.2])
    assert list(by_name["uniform"].error_y.arrayminus) == pytest.approx([0.1])
    assert fig.layout.xaxis.type == fig.layout.yaxis.type == "log"
    zero = allocator_frontier([{**points[0], "y_lo": 0.0}, points[1]])
    assert zero.layout.yaxis.type != "log"  # a KL of 0 (every key kept) cannot sit on a log axis
    plain = allocator_frontier([{k: v for k, v in p.items() if not k.startswith("y_")} for p in points])
    assert all(t.error_y.array is None for t in plain.data)
