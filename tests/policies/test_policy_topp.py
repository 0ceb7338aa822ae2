"""``topp``: the smallest set of highest-weight keys whose full-softmax mass reaches p.

Scores are logs of chosen probabilities, so the softmax over the allowed keys
(the "full" softmax, before any budget) is known by hand.
"""

import math

import pytest
import torch
from policy_helpers import causal, encoder, keep_mask, mat

from attnviz.budget import Budget, BudgetError
from attnviz.engine.run import BudgetRun
from attnviz.policies import get_policy

L = math.log
BIG = 50.0  # score on a forbidden key: must neither be kept nor count in the softmax


def _causal_scores():
    # Row probabilities over the allowed keys: [1], [0.7, 0.3], [0.2, 0.5, 0.3], [0.1, 0.15, 0.4, 0.35]
    return torch.tensor([[
        [0.0, BIG, BIG, BIG],
        [L(0.7), L(0.3), BIG, BIG],
        [L(0.2), L(0.5), L(0.3), BIG],
        [L(0.1), L(0.15), L(0.4), L(0.35)],
    ]], dtype=torch.float64)


@pytest.mark.parametrize(
    "p,expected",
    [
        # row 1: 0.7 >= 0.6; row 2: 0.5 < 0.6, 0.5+0.3 >= 0.6; row 3: 0.4 < 0.6, 0.4+0.35 >= 0.6
        (0.6, ["1...", "1...", ".11.", "..11"]),
        # p = 0.3: the single largest key always reaches it
        (0.3, ["1...", "1...", ".1..", "..1."]),
        # p = 0.76: row 1 needs both (0.7 < 0.76); row 2 0.5+0.3 >= 0.76; row 3 0.4+0.35 = 0.75 < 0.76, +0.15
        (0.76, ["1...", "11..", ".11.", ".111"]),
        # p = 0.92: row 2 needs all three (0.8 < 0.92); row 3 0.4+0.35+0.15 = 0.9 < 0.92, so all four
        (0.92, ["1...", "11..", "111.", "1111"]),
        (1.0, ["1...", "11..", "111.", "1111"]),
    ],
)
def test_topp_causal_hand_checked(p, expected):
    keep = keep_mask("topp", _causal_scores(), causal(4), Budget("topp", ratio=p))
    assert torch.equal(keep[0], mat(expected))


def test_topp_per_head():
    # head 1 has the reverse preferences of head 0 in row 2
    s = _causal_scores()
    h1 = s[0].clone()
    h1[2, :3] = torch.tensor([L(0.5), L(0.2), L(0.3)], dtype=torch.float64)
    keep = keep_mask("topp", torch.stack([s[0], h1]), causal(4), Budget("topp", ratio=0.6))
    assert keep[0, 2].tolist() == [False, True, True, False]
    assert keep[1, 2].tolist() == [True, False, True, False]


def test_topp_encoder_hand_checked():
    scores = torch.tensor([[
        [L(0.6), L(0.3), L(0.1)],
        [L(0.1), L(0.45), L(0.45) + 0.1],  # key 2 slightly above key 1
        [L(1 / 3) - 0.01, L(1 / 3), L(1 / 3) + 0.01],
    ]], dtype=torch.float64)
    keep = keep_mask("topp", scores, encoder(3), Budget("topp", ratio=0.5), causal_model=False)
    # row 0: 0.6 >= 0.5 ; row 1: key 2 holds ~0.47 < 0.5, then key 1 ; row 2: ~0.34 < 0.5, then key 1
    assert torch.equal(keep[0], mat(["1..", ".11", ".11"]))


def test_topp_with_left_padding():
    # key 0 is padding: the softmax is over keys 1.. only, so key 0's huge score is ignored.
    allowed = causal(4).clone()
    allowed[..., 0] = False
    scores = torch.tensor([[
        [BIG, BIG, BIG, BIG],
        [BIG, 0.0, BIG, BIG],
        [BIG, L(0.55), L(0.45), BIG],
        [BIG, L(0.3), L(0.2), L(0.5)],
    ]], dtype=torch.float64)
    keep = keep_mask("topp", scores, allowed, Budget("topp", ratio=0.52))
    assert torch.equal(keep[0], mat(["....", ".1..", ".1..", ".1.1"]))


def test_topp_mass_exactly_reaching_p_stops():
    # Four equal scores: weights exactly 1/4 each; p = 1/2 is reached by exactly two keys.
    scores = torch.zeros(1, 1, 4, dtype=torch.float64)
    keep = keep_mask("topp", scores, encoder(4)[:, :1], Budget("topp", ratio=0.5), causal_model=False)
    assert int(keep.sum()) == 2
    keep = keep_mask("topp", scores, encoder(4)[:, :1], Budget("topp", ratio=0.25), causal_model=False)
    assert int(keep.sum()) == 1


def test_topp_random_rows_are_the_smallest_set_reaching_p():
    gen = torch.Generator().manual_seed(0)
    hq, n, p = 2, 8, 0.8
    scores = torch.randn(hq, n, n, generator=gen, dtype=torch.float64) * 2
    keep = keep_mask("topp", scores, causal(n), Budget("topp", ratio=p))
    for h in range(hq):
        for i in range(n):
            row = [math.exp(x) for x in scores[h, i, : i + 1].tolist()]
            z = sum(row)
            probs = [x / z for x in row]
            order = sorted(range(i + 1), key=lambda j: -probs[j])
            chosen, mass = [], 0.0
            for j in order:
                if mass >= p:
                    break
                chosen.append(j)
                mass += probs[j]
            assert keep[h, i].tolist() == [j in chosen for j in range(n)], (h, i)


@pytest.mark.parametrize("size", [{"keys": 3}, {"keys": (1, 2)}, {"layer_keys": (2, 3)}])
def test_topp_rejects_key_counts(size):
    budget = Budget("topp", **size)
    with pytest.raises(BudgetError, match="topp"):
        get_policy("topp").validate(budget, True)
    with pytest.raises(BudgetError):
        BudgetRun([budget])


@pytest.mark.parametrize("p", [0.0, 1.5, float("nan")])
def test_topp_rejects_bad_mass(p):
    with pytest.raises(BudgetError):
        get_policy("topp").validate(Budget("topp", ratio=p), True)


def test_topp_ties_at_the_edge_take_the_earliest_keys():
    # four equal weights: p = 0.5 needs two of them, p = 0.6 three; the earliest go first
    scores = torch.zeros(1, 1, 4)
    assert keep_mask("topp", scores, encoder(4)[:, :1], Budget("topp", ratio=0.5), causal_model=False)[0].tolist() \
        == [[True, True, False, False]]
    assert keep_mask("topp", scores, encoder(4)[:, :1], Budget("topp", ratio=0.6), causal_model=False)[0].tolist() \
        == [[True, True, True, False]]
    # a larger key first, then a tie: 0.4 | 0.2 0.2 0.2; p = 0.7 needs the 0.4 and two of the three
    row = torch.tensor([[[L(0.2), L(0.4), L(0.2), L(0.2)]]], dtype=torch.float64)
    assert keep_mask("topp", row, encoder(4)[:, :1], Budget("topp", ratio=0.7), causal_model=False)[0].tolist() \
        == [[True, True, True, False]]


@pytest.mark.parametrize("n", [40, 160])  # 160: enough rows to be split over threads
@pytest.mark.parametrize("p", [0.3, 0.8, 0.95, 0.999])
def test_topp_equals_sorting_every_row(p, n):
    """Against the textbook construction (sort, cumulative mass, scatter back) on random causal scores
    (float64, so the two cumulative sums cannot round to opposite sides of p)."""
    gen = torch.Generator().manual_seed(int(p * 1000))
    scores = torch.randn(3, n, n, generator=gen, dtype=torch.float64) * 3
    allowed = causal(n)
    probs = torch.softmax(scores.masked_fill(~allowed, float("-inf")), -1)
    sorted_p, order = torch.sort(probs, -1, descending=True)
    chosen = (torch.cumsum(sorted_p, -1) - sorted_p) < p
    expected = torch.zeros_like(chosen).scatter_(-1, order, chosen) & allowed
    assert torch.equal(keep_mask("topp", scores, allowed, Budget("topp", ratio=p)), expected)
