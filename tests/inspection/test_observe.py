"""Observers: hand-checked statistics on synthetic weights, and shapes/bounds on real passes."""

import math

import numpy as np
import pytest
import torch

from attnviz.inspection.observe import HeadStats, LayerSummary, thumbnail
from attnviz.measure import encode_for, reference_pass

TEXT = ("Attention lets every token look back at the tokens before it. A budget keeps only some of those "
        "looks, and we measure what that costs in quality.")


def entropy(*w: float) -> float:
    return -sum(x * math.log(x) for x in w if x > 0)


def synthetic() -> torch.Tensor:
    """(batch 1, heads 2, q 2, k 4)."""
    return torch.tensor([[
        [[1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]],
        [[0.25, 0.25, 0.25, 0.25], [0.1, 0.2, 0.3, 0.4]],
    ]])


def test_head_stats_hand_checked():
    stats = HeadStats()
    stats(0, synthetic(), None)
    np.testing.assert_allclose(stats.entropy, [[math.log(2) / 2, (math.log(4) + entropy(0.1, 0.2, 0.3, 0.4)) / 2]])
    np.testing.assert_allclose(stats.sink_share, [[0.75, 0.175]])
    np.testing.assert_allclose(stats.top3_mass, [[1.0, 0.825]], rtol=1e-6)
    assert stats.layers == [0]


def test_head_stats_table_rows_and_layers():
    stats = HeadStats()
    stats(1, synthetic(), None)
    stats(0, synthetic().flip(1), None)  # heads swapped
    rows = stats.table()
    assert [(r["layer"], r["head"]) for r in rows] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert set(rows[0]) == {"layer", "head", "entropy", "sink_share", "top3_mass"}
    assert rows[0]["sink_share"] == pytest.approx(0.175) and rows[3]["sink_share"] == pytest.approx(0.175)
    assert stats.entropy.shape == (2, 2)
    assert set(stats.arrays()) == {"entropy", "sink_share", "top3_mass"}
    assert HeadStats().table() == [] and HeadStats().entropy.shape == (0, 0)


def test_head_stats_accumulates_calls_and_skips_empty_rows():
    stats = HeadStats()
    w = synthetic()
    stats(0, w[:, :, :1], None)  # first query only: sink 1.0 / 0.25
    stats(0, w[:, :, 1:], None)  # then the second: the means cover both
    np.testing.assert_allclose(stats.sink_share, [[0.75, 0.175]])
    empty = torch.cat([w, torch.zeros(1, 2, 1, 4)], dim=2)  # a row with no visible key
    fresh = HeadStats()
    fresh(0, empty, None)
    np.testing.assert_allclose(fresh.sink_share, [[0.75, 0.175]])


def test_head_stats_top3_with_fewer_keys_and_row_choice():
    w = torch.tensor([[[[0.7, 0.3]]], [[[0.2, 0.8]]]])  # batch 2, 1 head, 1 query, 2 keys
    stats = HeadStats(row=1)
    stats(0, w, None)
    assert stats.top3_mass[0, 0] == pytest.approx(1.0)
    assert stats.sink_share[0, 0] == pytest.approx(0.2)


def test_layer_summary_synthetic():
    torch.manual_seed(0)
    w = torch.rand(1, 3, 64, 48).softmax(-1)
    summary = LayerSummary(thumb_size=16)
    summary(4, w, None)
    assert summary.layers == [4]
    assert summary.head_mean[4].dtype == torch.float16 and summary.head_max[4].dtype == torch.float16
    torch.testing.assert_close(summary.head_mean[4].float(), w[0].mean(0), atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(summary.head_max[4].float(), w[0].amax(0), atol=1e-3, rtol=1e-3)
    thumbs = summary.thumbs[4]
    assert thumbs.shape == (3, 16, 16) and thumbs.dtype == torch.float16
    blocks = w[0].reshape(3, 16, 4, 16, 3).mean(dim=(2, 4))  # 64/16 x 48/16 blocks
    torch.testing.assert_close(thumbs.float(), blocks, atol=1e-3, rtol=1e-3)


def test_thumbnail_keeps_small_maps():
    w = torch.rand(2, 5, 7)
    assert torch.equal(thumbnail(w, 32), w)
    assert thumbnail(w, 4).shape == (2, 4, 4)
    with pytest.raises(ValueError):
        LayerSummary(thumb_size=0)


def test_layer_summary_memory_at_1024_tokens():
    summary = LayerSummary()
    summary(0, torch.full((1, 9, 1024, 1024), 1 / 1024), None)
    per_layer = summary.nbytes()
    assert per_layer == 2 * 2 * 1024 * 1024 + 9 * 32 * 32 * 2
    assert 30 * per_layer < 200e6  # far below the app's 2.5 GB


def test_observers_on_smollm2(smollm2):
    encoded = encode_for(smollm2, TEXT)
    n = encoded.n_tokens
    assert 30 <= n <= 50
    stats, summary = HeadStats(), LayerSummary(thumb_size=8)
    ref = reference_pass(smollm2, encoded, capture=[0, 29], observers=[stats, summary])
    assert stats.entropy.shape == stats.sink_share.shape == stats.top3_mass.shape == (30, 9)
    # Row i sees i+1 keys: each row's entropy <= log(i+1), so the mean is below the mean bound.
    bound = np.mean([math.log(i + 1) for i in range(n)])
    assert (stats.entropy >= 0).all() and (stats.entropy <= bound + 1e-5).all()
    assert ((stats.sink_share >= 0) & (stats.sink_share <= 1)).all()
    assert (stats.top3_mass <= 1 + 1e-5).all() and (stats.top3_mass >= stats.sink_share - 1e-6).all()
    # The statistics agree with the captured weights of layer 29.
    w = ref.weights[29].float()
    np.testing.assert_allclose(stats.sink_share[29], w[..., 0].mean(-1).numpy(), atol=2e-3)
    np.testing.assert_allclose(stats.entropy[29], torch.special.entr(w).sum(-1).mean(-1).numpy(), atol=2e-2)
    assert summary.layers == list(range(30))
    mean = summary.head_mean[0].float()
    assert mean.shape == (n, n) and summary.thumbs[0].shape == (9, 8, 8)
    torch.testing.assert_close(mean.sum(-1), torch.ones(n), atol=1e-2, rtol=0)
    assert torch.equal(mean, mean.tril())  # causal: nothing above the diagonal


def test_observers_on_minilm(minilm):
    encoded = encode_for(minilm, TEXT)
    stats = HeadStats()
    reference_pass(minilm, encoded, observers=[stats])
    assert stats.entropy.shape == (6, 12)
    assert (stats.entropy <= math.log(encoded.n_tokens) + 1e-5).all()
    assert ((stats.sink_share >= 0) & (stats.sink_share <= 1)).all()
