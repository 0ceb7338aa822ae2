"""``window``: per query its K most recent keys (itself included); encoders: the K
nearest positions, ties broken toward the earlier position."""

import torch
from policy_helpers import causal, encoder, keep_mask, mat

from attnviz.budget import Budget


def _scores(hq, q, k):
    return torch.randn(hq, q, k, generator=torch.Generator().manual_seed(0))


def test_window_causal_k2():
    keep = keep_mask("window", _scores(3, 5, 5), causal(5), Budget("window", keys=2))
    expected = mat(["1....", "11...", ".11..", "..11.", "...11"])
    assert torch.equal(keep, expected.expand(3, 5, 5))  # scores play no part: every head alike


def test_window_causal_k1_is_the_query_itself():
    keep = keep_mask("window", _scores(1, 4, 4), causal(4), Budget("window", keys=1))
    assert torch.equal(keep[0], torch.eye(4, dtype=torch.bool))


def test_window_causal_ratio():
    # |A_i| = 1..6, R = 0.5 -> counts 1,1,2,2,3,3
    keep = keep_mask("window", _scores(1, 6, 6), causal(6), Budget("window", ratio=0.5))
    assert torch.equal(keep[0], mat(["1.....", ".1....", ".11...", "..11..", "..111.", "...111"]))


def test_window_per_head_keys():
    keep = keep_mask("window", _scores(2, 4, 4), causal(4), Budget("window", keys=(1, 3)))
    assert torch.equal(keep[0], torch.eye(4, dtype=torch.bool))
    assert torch.equal(keep[1], mat(["1...", "11..", "111.", ".111"]))


def test_window_decoding_queries_sit_at_the_end():
    # 2 queries over 5 keys: they are positions 3 and 4.
    allowed = torch.ones(2, 5, dtype=torch.bool).tril(diagonal=3).unsqueeze(0)
    keep = keep_mask("window", _scores(1, 2, 5), allowed, Budget("window", keys=2))
    assert torch.equal(keep[0], mat(["..11.", "...11"]))


def test_window_encoder_k2_ties_go_to_the_earlier_position():
    keep = keep_mask("window", _scores(2, 5, 5), encoder(5), Budget("window", keys=2), causal_model=False)
    # row 0: itself + 1 ; rows 1..4: itself + the previous position (tie with the next one)
    assert torch.equal(keep, mat(["11...", "11...", ".11..", "..11.", "...11"]).expand(2, 5, 5))


def test_window_encoder_k3_and_k4():
    keep = keep_mask("window", _scores(1, 5, 5), encoder(5), Budget("window", keys=3), causal_model=False)
    assert torch.equal(keep[0], mat(["111..", "111..", ".111.", "..111", "..111"]))
    keep = keep_mask("window", _scores(1, 5, 5), encoder(5), Budget("window", keys=4), causal_model=False)
    # row 2: itself, 1 and 3 (distance 1), then 0 beats 4 (distance 2, earlier wins)
    assert torch.equal(keep[0], mat(["1111.", "1111.", "1111.", ".1111", ".1111"]))


def test_window_causal_left_padding():
    allowed = causal(5).clone()
    allowed[..., 0] = False  # key 0 is padding
    keep = keep_mask("window", _scores(1, 5, 5), allowed, Budget("window", keys=2))
    assert torch.equal(keep[0], mat([".....", ".1...", ".11..", "..11.", "...11"]))


def test_window_encoder_right_padding():
    allowed = encoder(5).clone()
    allowed[..., 4] = False  # key 4 is padding; the padded query still sees keys 0..3
    keep = keep_mask("window", _scores(1, 5, 5), allowed, Budget("window", keys=2), causal_model=False)
    assert torch.equal(keep[0], mat(["11...", "11...", ".11..", "..11.", "..11."]))


def test_window_k_larger_than_sequence_is_full():
    keep = keep_mask("window", _scores(1, 4, 4), causal(4), Budget("window", keys=10))
    assert torch.equal(keep[0], causal(4)[0])
