"""``duo``: mass outside sinks and a window, and the streaming heads' size, checked by hand."""

import numpy as np
import pytest
import torch

from attnviz.allocators import Setting, get_allocator
from attnviz.allocators import duo as duo_mod
from attnviz.budget import Budget, BudgetError


def test_distance_mass_by_hand():
    # one head, 3 rows, causal: row 2 puts .5 on key 0, .3 on key 1, .2 on itself
    w = torch.tensor([[[1.0, 0, 0], [0.4, 0.6, 0], [0.5, 0.3, 0.2]]])
    got = duo_mod.distance_mass(w, sinks=1)  # key 0 is a sink: never counted
    # distance 0: .0 (row 0's own key is the sink) + .6 + .2; distance 1: .3 (row 2 -> key 1); mean over 3 rows
    assert got[0].tolist() == pytest.approx([0.8 / 3, 0.3 / 3, 0.0])
    assert duo_mod.outside_mass(got.numpy(), 1).tolist() == pytest.approx([0.1])


def _setting(monkeypatch, outside_rank):
    layers, q_heads, kv_heads, n = 2, 4, 2, 16
    dist = np.zeros((layers, q_heads, n))
    for (layer, kv), mass in outside_rank.items():
        dist[layer, kv * 2:(kv + 1) * 2, -1] = mass  # mass far back: outside any short window
    monkeypatch.setattr(duo_mod, "head_distances", lambda *a, **k: dist)
    monkeypatch.setattr(duo_mod, "calibration_name", lambda *a, **k: "rivers")
    return Setting(layers=layers, q_heads=q_heads, kv_heads=kv_heads, causal=True, row_keys=torch.arange(1, n + 1))


def test_top_heads_keep_everything_and_the_rest_spend_the_total(monkeypatch):
    s = _setting(monkeypatch, {(0, 0): 0.1, (0, 1): 0.9, (1, 0): 0.3, (1, 1): 0.2})
    b = Budget.of("sink_window", keys=8, sinks=2, allocator=get_allocator("duo", retrieval=0.25))
    planned = b.allocator.plan(b, s)
    assert planned.plan["retrieval_heads"] == [[0, 1]]  # the one head (of 4) losing most
    k = planned.plan["streaming_keys"]
    assert planned.layer_keys[0] == (k, k, 16, 16) and planned.layer_keys[1] == (k, k, k, k)
    spent = sum(int(torch.clamp(s.row_keys, max=x).sum()) for layer in planned.layer_keys for x in layer)
    assert spent == pytest.approx(s.uniform_pairs(8), rel=0.05)


def test_a_total_too_small_for_the_share_is_one_line(monkeypatch):
    s = _setting(monkeypatch, {(0, 0): 0.1, (0, 1): 0.9, (1, 0): 0.3, (1, 1): 0.2})
    b = Budget.of("sink_window", keys=4, sinks=2, allocator=get_allocator("duo", retrieval=0.5))
    with pytest.raises(BudgetError, match="too small for f=0.5") as err:
        b.allocator.plan(b, s)
    assert "\n" not in str(err.value)
