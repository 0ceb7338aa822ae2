"""``price`` and its demand curve: counts by hand, and the price found from the histograms."""

import math

import numpy as np
import pytest
import torch

from attnviz.allocators import Setting, get_allocator
from attnviz.allocators.demand import DemandBuilder
from attnviz.budget import Budget


def test_counts_by_hand():
    price = get_allocator("price", tau=0.15, floor=0.25)  # K=8: F = 2
    probs = torch.tensor([[[0.5, 0.2, 0.16, 0.1, 0.04], [0.3, 0.3, 0.2, 0.1, 0.1]],
                          [[0.9, 0.04, 0.03, 0.02, 0.01], [0.96, 0.01, 0.01, 0.01, 0.01]]])
    allowed = torch.ones(1, 2, 5, dtype=torch.bool)
    got = price.layer_counts(None, probs, allowed, Budget("topk", keys=8, allocator=price))
    assert got.tolist() == [[3, 3], [2, 2]]  # p >= 0.15: 3 and 3; then 1 and 1, raised to the floor F=2
    assert price.floor_keys(8) == 2 and price.floor_keys(3) == 1 and price.floor_keys(1) == 1


def test_a_row_never_keeps_more_than_it_may_see():
    price = get_allocator("price", tau=1e-9, floor=1.0)
    allowed = torch.ones(3, 3, dtype=torch.bool).tril().unsqueeze(0)
    probs = torch.softmax(torch.zeros(1, 3, 3).masked_fill(~allowed, float("-inf")), -1)
    got = price.layer_counts(None, probs, allowed, Budget("topk", keys=8, allocator=price))
    assert got.tolist() == [[1, 2, 3]]


def _random_layers(seed=0, layers=3, heads=2, n=40):
    g = torch.Generator().manual_seed(seed)
    allowed = torch.ones(n, n, dtype=torch.bool).tril().unsqueeze(0)
    out = []
    for _ in range(layers):
        scores = torch.randn(heads, n, n, generator=g) * 3
        out.append(torch.softmax(scores.masked_fill(~allowed, float("-inf")), -1))
    return out, allowed


def _brute_kept(layers, allowed, tau, floor):
    total = 0
    for p in layers:
        order = p.argsort(-1, descending=True).argsort(-1)  # rank of each key in its row
        keep = ((p >= tau) | (order < floor)) & allowed
        total += int(keep.sum())
    return total


@pytest.mark.parametrize("floor", [0, 1, 3])
def test_demand_counts_match_brute_force(floor):
    layers, allowed = _random_layers()
    b = DemandBuilder(len(layers))
    for i, p in enumerate(layers):
        b.add(i, p, allowed)
    demand = b.build()
    assert demand.pairs == 3 * 2 * 40 * 41 // 2 and demand.ranks == 32
    for tau in (1e-4, 0.003, 0.02, 0.1, 0.5):
        brute = _brute_kept(layers, allowed, tau, floor)
        assert demand.kept(tau, floor) == pytest.approx(brute, rel=0.02, abs=5)


def test_price_found_spends_the_total_within_two_percent():
    layers, allowed = _random_layers(seed=1, layers=4, heads=3, n=64)
    b = DemandBuilder(len(layers))
    for i, p in enumerate(layers):
        b.add(i, p, allowed)
    demand = b.build()
    rows = torch.arange(1, 65)
    s = Setting(layers=4, q_heads=3, kv_heads=1, causal=True, row_keys=rows, demand=lambda floor=0: demand)
    for keys in (2, 4, 8, 16):
        planned = get_allocator("price").plan(Budget("topk", keys=keys, allocator="price"), s)
        tau = planned.allocator.tau
        assert planned.plan == {"tau": tau} and 0 < tau < 1
        brute = _brute_kept(layers, allowed, tau, max(1, keys // 4))
        assert brute == pytest.approx(s.uniform_pairs(keys), rel=0.02)


def test_price_label_says_auto():
    assert Budget("topk", keys=8, allocator="price").label == "topk K=8 · price τ=auto f=0.25"
    assert "τ=0.01" in Budget("topk", keys=8, allocator=get_allocator("price", tau=0.01)).label
    assert math.isclose(np.log10(1e-3), -3)


def test_a_floor_above_the_ranks_kept_apart_is_refused_not_guessed():
    layers, allowed = _random_layers()
    b = DemandBuilder(len(layers), ranks=2)
    for i, p in enumerate(layers):
        b.add(i, p, allowed)
    demand = b.build()
    assert demand.kept(0.1, 2) == pytest.approx(_brute_kept(layers, allowed, 0.1, 2), rel=0.02, abs=5)
    with pytest.raises(ValueError, match="ranks"):
        demand.kept(0.1, 3)
