"""``random``: per (query head, query) a uniformly random subset of the allowed keys,
of the size topk would keep; reproducible through the budget's seed (and the layer)."""

import pytest
import torch
from policy_helpers import causal, encoder, keep_mask

from attnviz.budget import Budget


def _scores(hq, q, k, seed=0):
    return torch.randn(hq, q, k, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "size,expected_counts",
    [
        ({"keys": 3}, [1, 2, 3, 3, 3, 3, 3, 3]),
        ({"ratio": 0.25}, [1, 1, 1, 1, 2, 2, 2, 2]),
        ({"ratio": 1.0}, [1, 2, 3, 4, 5, 6, 7, 8]),
    ],
)
def test_random_keeps_topk_counts_within_allowed(size, expected_counts):
    keep = keep_mask("random", _scores(3, 8, 8), causal(8), Budget.of("random", **size))  # asserts subset of allowed
    assert keep.sum(-1).tolist() == [expected_counts] * 3


def test_random_counts_with_per_head_keys_and_padding():
    allowed = causal(6).clone()
    allowed[..., :2] = False  # two padding tokens: |A_i| = 0,0,1,2,3,4
    keep = keep_mask("random", _scores(2, 6, 6), allowed, Budget.of("random", keys=(1, 3)))
    assert keep.sum(-1).tolist() == [[0, 0, 1, 1, 1, 1], [0, 0, 1, 2, 3, 3]]
    assert not keep[..., :2].any()


def test_random_is_reproducible_for_same_seed_and_layer():
    b = Budget.of("random", keys=3, seed=7)
    a1 = keep_mask("random", _scores(4, 20, 20), causal(20), b, layer=2)
    a2 = keep_mask("random", _scores(4, 20, 20), causal(20), b, layer=2)
    assert torch.equal(a1, a2)


def test_random_differs_for_another_seed():
    m0 = keep_mask("random", _scores(4, 20, 20), causal(20), Budget.of("random", keys=3, seed=0))
    m1 = keep_mask("random", _scores(4, 20, 20), causal(20), Budget.of("random", keys=3, seed=1))
    assert not torch.equal(m0, m1)
    assert torch.equal(m0.sum(-1), m1.sum(-1))


def test_random_does_not_look_at_scores():
    b = Budget.of("random", keys=3, seed=3)
    m0 = keep_mask("random", _scores(2, 10, 10, seed=0), causal(10), b)
    m1 = keep_mask("random", _scores(2, 10, 10, seed=1), causal(10), b)
    assert torch.equal(m0, m1)


def test_random_is_roughly_uniform_on_an_encoder():
    # 4000 query rows over 8 keys, K = 2: each key is chosen with probability 2/8 = 0.25.
    q, n, k = 4000, 8, 2
    allowed = torch.ones(1, q, n, dtype=torch.bool)
    keep = keep_mask("random", torch.zeros(1, q, n), allowed, Budget.of("random", keys=k, seed=11),
                     causal_model=False)
    freq = keep[0].float().mean(0)  # per key
    # binomial std = sqrt(0.25 * 0.75 / 4000) ~ 0.0068; 0.03 is > 4 std
    assert torch.allclose(freq, torch.full((n,), k / n), atol=0.03), freq
    # pairs are uniform too: all C(8, 2) = 28 subsets appear, each ~ 1/28 of the rows
    pairs = {}
    for row in keep[0].nonzero()[:, 1].view(q, k).tolist():
        pairs[tuple(row)] = pairs.get(tuple(row), 0) + 1
    assert len(pairs) == 28
    assert all(abs(c / q - 1 / 28) < 0.02 for c in pairs.values())


def test_random_is_roughly_uniform_per_causal_row():
    # 3000 query heads over a causal text of 6: row i keeps min(2, i+1) of its i+1 keys.
    hq, n, k = 3000, 6, 2
    keep = keep_mask("random", torch.zeros(hq, n, n), causal(n), Budget.of("random", keys=k, seed=5))
    for i in range(n):
        freq = keep[:, i, : i + 1].float().mean(0)
        expected = min(k, i + 1) / (i + 1)
        assert torch.allclose(freq, torch.full((i + 1,), expected), atol=0.04), (i, freq)


def test_random_encoder_mask():
    keep = keep_mask("random", _scores(2, 5, 5), encoder(5), Budget.of("random", keys=2), causal_model=False)
    assert keep.sum(-1).tolist() == [[2] * 5] * 2


def test_random_draws_shared_within_a_call_equal_fresh_ones():
    """One call memoises a layer's draws for its blocks and budgets; slices of it (other layers, seeds,
    query blocks, a longer text, a decoding step) equal the draws made afresh."""
    from attnviz.policies.random import _layer_draws, uniform_draws

    memo = {}
    asks = [(0, 2, 9, 9), (0, 2, 3, 9), (0, 2, 4, 6), (1, 2, 9, 9), (1, 2, 12, 12), (1, 2, 1, 12), (1, 7, 5, 12),
            (0, 2, 9, 9)]
    for layer, seed, q_len, k_len in asks:
        got = _layer_draws(memo, seed, layer, 3, q_len, k_len)
        assert torch.equal(got, uniform_draws(seed, layer, 3, q_len, k_len)), (layer, seed, q_len, k_len)
    assert len(memo) == 2  # one entry per seed, the latest layer only
