"""``sink_window``: the first S positions (default 4) plus the K-S most recent keys;
a query with at most K allowed keys keeps them all; K <= S is an error.
Encoders: the first S plus the K-S nearest."""

import pytest
import torch
from policy_helpers import causal, encoder, keep_mask, mat

from attnviz.budget import Budget, BudgetError
from attnviz.engine.run import BudgetRun
from attnviz.policies import get_policy


def _scores(hq, n):
    return torch.randn(hq, n, n, generator=torch.Generator().manual_seed(1))


def test_sink_window_causal_s2_k4():
    keep = keep_mask("sink_window", _scores(2, 8), causal(8), Budget.of("sink_window", keys=4, sinks=2))
    expected = mat([
        "1.......",
        "11......",
        "111.....",
        "1111....",  # 4 allowed keys <= K: all kept
        "11.11...",  # sinks 0,1 + the 2 most recent
        "11..11..",
        "11...11.",
        "11....11",
    ])
    assert torch.equal(keep, expected.expand(2, 8, 8))


def test_sink_window_default_four_sinks():
    assert Budget.of("sink_window", keys=6).policy.sinks == 4
    keep = keep_mask("sink_window", _scores(1, 8), causal(8), Budget.of("sink_window", keys=6))
    expected = mat([
        "1.......",
        "11......",
        "111.....",
        "1111....",
        "11111...",
        "111111..",
        "1111.11.",
        "1111..11",
    ])
    assert torch.equal(keep[0], expected)


def test_sink_window_zero_sinks_is_a_window():
    keep = keep_mask("sink_window", _scores(1, 5), causal(5), Budget.of("sink_window", keys=2, sinks=0))
    assert torch.equal(keep[0], mat(["1....", "11...", ".11..", "..11.", "...11"]))


def test_sink_window_encoder_s1_k3():
    keep = keep_mask("sink_window", _scores(1, 6), encoder(6), Budget.of("sink_window", keys=3, sinks=1),
                     causal_model=False)
    expected = mat([
        "111...",  # sink 0 (= itself) + nearest 1, 2
        "111...",  # sink 0, itself, then 2 (0 is already a sink)
        "111...",  # sink 0, itself, then 1 (tie with 3 goes to the earlier)
        "1.11..",
        "1..11.",
        "1...11",
    ])
    assert torch.equal(keep[0], expected)


def test_sink_window_encoder_s2_k4():
    keep = keep_mask("sink_window", _scores(1, 7), encoder(7), Budget.of("sink_window", keys=4, sinks=2),
                     causal_model=False)
    expected = mat([
        "1111...",  # sinks 0,1 (0 is itself), then the nearest others 2, 3
        "1111...",  # sinks 0,1 (1 is itself), then 2, 3
        "1111...",  # sinks, itself, then 3 (1 is already a sink)
        "1111...",  # sinks, itself, then 2 (tie with 4 goes to the earlier)
        "11.11..",  # sinks, itself 4, then 3
        "11..11.",
        "11...11",
    ])
    assert torch.equal(keep[0], expected)


def test_sink_window_left_padding_sinks_are_the_first_real_tokens():
    allowed = causal(7).clone()
    allowed[..., :2] = False  # keys 0,1 are padding
    keep = keep_mask("sink_window", _scores(1, 7), allowed, Budget.of("sink_window", keys=3, sinks=1))
    expected = mat([
        ".......",
        ".......",
        "..1....",
        "..11...",
        "..111..",
        "..1.11.",
        "..1..11",
    ])
    assert torch.equal(keep[0], expected)


def test_sink_window_ratio_keeps_min_s_and_k_minus_1_sinks():
    # R = 0.5 on |A_i| = 1..6: k_i = 1,1,2,2,3,3 ; sinks min(S=1, k_i - 1) = 0,0,1,1,1,1
    keep = keep_mask("sink_window", _scores(1, 6), causal(6), Budget.of("sink_window", ratio=0.5, sinks=1))
    assert torch.equal(keep[0], mat(["1.....", ".1....", "1.1...", "1..1..", "1..11.", "1...11"]))


@pytest.mark.parametrize("keys,sinks", [(4, 4), (2, 4), (1, 1), (3, 5)])
def test_sink_window_k_not_above_s_is_an_error(keys, sinks):
    budget = Budget.of("sink_window", keys=keys, sinks=sinks)
    with pytest.raises(BudgetError, match="sink_window"):
        get_policy("sink_window").validate(budget, True)
    with pytest.raises(BudgetError):
        BudgetRun([budget])


def test_sink_window_default_sinks_needs_k_above_4():
    with pytest.raises(BudgetError):
        get_policy("sink_window").validate(Budget.of("sink_window", keys=4), True)
    get_policy("sink_window").validate(Budget.of("sink_window", keys=5), True)


@pytest.mark.parametrize(
    "size",
    [{"keys": (2, 8)}, {"layer_keys": (8, 2)}, {"layer_keys": (8, (8, 2))}],
    ids=["per-head", "per-layer", "per-layer-per-head"],
)
def test_sink_window_k_not_above_s_is_an_error_for_per_head_and_per_layer_keys(size):
    """Spec: K <= S is a BudgetError -- also when K comes from a per-head or per-layer count."""
    with pytest.raises(BudgetError):
        get_policy("sink_window").validate(Budget.of("sink_window", sinks=2, **size), True)


def test_sink_window_negative_sinks_is_an_error():
    with pytest.raises(BudgetError):
        get_policy("sink_window").validate(Budget.of("sink_window", keys=4, sinks=-1), True)
