"""``topk``: per (query head, query) the keys with the highest scores."""

import pytest
import torch
from policy_helpers import causal, encoder, keep_mask, mat

from attnviz.budget import Budget

NEG = -5.0  # an arbitrary low score
BIG = 99.0  # a score on a key the model's mask forbids: must never be chosen


def _causal_scores():
    # Two query heads over 4 causal positions. Entries above the diagonal are
    # forbidden keys and get a huge score to prove they are never picked.
    h0 = torch.tensor([
        [5.0, BIG, BIG, BIG],
        [1.0, 3.0, BIG, BIG],
        [3.0, 1.0, 2.0, BIG],
        [0.0, 4.0, 1.0, 3.0],
    ])
    h1 = torch.tensor([
        [-1.0, BIG, BIG, BIG],
        [3.0, 1.0, BIG, BIG],
        [1.0, 3.0, 2.0, BIG],
        [4.0, 0.0, 3.0, 1.0],
    ])
    return torch.stack([h0, h1])


def test_topk_causal_k2_hand_checked():
    keep = keep_mask("topk", _causal_scores(), causal(4), Budget("topk", keys=2))
    # head 0: row 2 top-2 of [3,1,2] = keys 0,2; row 3 top-2 of [0,4,1,3] = keys 1,3
    assert torch.equal(keep[0], mat(["1...", "11..", "1.1.", ".1.1"]))
    # head 1: row 2 top-2 of [1,3,2] = keys 1,2; row 3 top-2 of [4,0,3,1] = keys 0,2
    assert torch.equal(keep[1], mat(["1...", "11..", ".11.", "1.1."]))


def test_topk_causal_k1_hand_checked():
    keep = keep_mask("topk", _causal_scores(), causal(4), Budget("topk", keys=1))
    assert torch.equal(keep[0], mat(["1...", ".1..", "1...", ".1.."]))
    assert torch.equal(keep[1], mat(["1...", "1...", ".1..", "1..."]))


def test_topk_causal_ratio_half():
    # |A_i| = 1,2,3,4 -> counts max(1, ceil(0.5 |A_i|)) = 1,1,2,2
    keep = keep_mask("topk", _causal_scores(), causal(4), Budget("topk", ratio=0.5))
    assert torch.equal(keep[0], mat(["1...", ".1..", "1.1.", ".1.1"]))
    assert torch.equal(keep[1], mat(["1...", "1...", ".11.", "1.1."]))


def test_topk_per_head_keys():
    keep = keep_mask("topk", _causal_scores(), causal(4), Budget("topk", keys=(1, 3)))
    assert torch.equal(keep[0], mat(["1...", ".1..", "1...", ".1.."]))
    # head 1 with K=3: row 3 top-3 of [4,0,3,1] = keys 0,2,3
    assert torch.equal(keep[1], mat(["1...", "11..", "111.", "1.11"]))


def test_topk_k_at_least_n_keeps_all_allowed():
    keep = keep_mask("topk", _causal_scores(), causal(4), Budget("topk", keys=4))
    assert torch.equal(keep, causal(4).expand(2, 4, 4))
    keep = keep_mask("topk", _causal_scores(), causal(4), Budget("topk", ratio=1.0))
    assert torch.equal(keep, causal(4).expand(2, 4, 4))


def test_topk_encoder_hand_checked():
    scores = torch.tensor([[
        [1.0, 2.0, 3.0],
        [3.0, 2.0, 1.0],
        [2.0, 3.0, 1.0],
    ]])
    keep = keep_mask("topk", scores, encoder(3), Budget("topk", keys=2), causal_model=False)
    assert torch.equal(keep[0], mat([".11", "11.", "11."]))


def test_topk_with_left_padding():
    # Key 0 is padding (score BIG, still forbidden); padded query row 0 sees nothing.
    allowed = causal(4).clone()
    allowed[..., 0] = False
    scores = torch.tensor([[
        [BIG, NEG, NEG, NEG],
        [BIG, 1.0, NEG, NEG],
        [BIG, 1.0, 2.0, NEG],
        [BIG, 1.0, 3.0, 2.0],
    ]])
    keep = keep_mask("topk", scores, allowed, Budget("topk", keys=2))
    assert torch.equal(keep[0], mat(["....", ".1..", ".11.", "..11"]))


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_topk_random_scores_against_sort_reference(k):
    gen = torch.Generator().manual_seed(k)
    hq, n = 3, 7
    scores = torch.randn(hq, n, n, generator=gen)
    keep = keep_mask("topk", scores, causal(n), Budget("topk", keys=k))
    for h in range(hq):
        for i in range(n):
            row = scores[h, i, : i + 1].tolist()
            best = sorted(range(i + 1), key=lambda j: -row[j])[: min(k, i + 1)]
            expected = [j in best for j in range(n)]
            assert keep[h, i].tolist() == expected, (h, i)


def test_topk_ties_at_the_threshold_still_keep_exactly_k():
    """Equal scores at the K-th place: the threshold shortcut would keep too many, the exact path keeps K."""
    scores = torch.tensor([[[1.0, 2.0, 2.0, 2.0, 0.5]]])
    keep = keep_mask("topk", scores, torch.ones(1, 1, 5, dtype=torch.bool), Budget("topk", keys=2), causal_model=False)
    assert keep.sum().item() == 2
    assert keep[0, 0, 1:4].sum().item() == 2 and not keep[0, 0, 0] and not keep[0, 0, 4]


def test_kth_largest_matches_sorting():
    from attnviz.policies.base import kth_largest

    x = torch.randn(3, 5, 11, generator=torch.Generator().manual_seed(0))
    x[0, 0, 3:] = float("-inf")
    big = torch.randn(9, 130, 300, generator=torch.Generator().manual_seed(1))  # split over threads
    for values in (x, big, big[:1].expand(4, -1, -1)):
        for k in (1, 4, 11):
            expected = values.sort(dim=-1, descending=True).values[..., k - 1:k]
            assert torch.equal(kth_largest(values, k), expected)
