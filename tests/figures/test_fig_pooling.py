"""pool_matrix: exact block means, ragged edges, attention rows still summing to 1."""

import numpy as np
import pytest

from attnviz.figures import pool_factor, pool_matrix


def test_no_pooling_when_small():
    m = np.arange(9.0).reshape(3, 3)
    pooled, f = pool_matrix(m, max_side=3)
    assert f == 1
    np.testing.assert_array_equal(pooled, m)


def test_4x4_to_2x2_block_means_exact():
    m = np.array(
        [
            [1.0, 2.0, 3.0, 4.0],
            [5.0, 6.0, 7.0, 8.0],
            [9.0, 10.0, 11.0, 12.0],
            [13.0, 14.0, 15.0, 16.0],
        ]
    )
    pooled, f = pool_matrix(m, max_side=2)
    assert f == 2
    expected = np.array([[(1 + 2 + 5 + 6) / 4, (3 + 4 + 7 + 8) / 4], [(9 + 10 + 13 + 14) / 4, (11 + 12 + 15 + 16) / 4]])
    np.testing.assert_array_equal(pooled, expected)


def test_ragged_last_block_uses_only_real_cells():
    m = np.arange(25.0).reshape(5, 5)
    pooled, f = pool_matrix(m, max_side=3)  # factor 2 -> 3x3, last row/col blocks are 1 wide
    assert f == 2 and pooled.shape == (3, 3)
    assert pooled[2, 2] == m[4, 4]
    assert pooled[0, 2] == np.mean(m[0:2, 4])
    assert pooled[2, 0] == np.mean(m[4, 0:2])


def test_factor_is_common_to_both_axes_and_fits():
    assert pool_factor((512, 512), 256) == 2
    assert pool_factor((1000, 10), 256) == 4
    pooled, f = pool_matrix(np.ones((1000, 10)), 256)
    assert f == 4 and pooled.shape == (250, 3) and max(pooled.shape) <= 256


@pytest.mark.parametrize("n,max_side", [(512, 256), (600, 256), (1000, 128), (7, 2)])
def test_share_mode_keeps_attention_rows_summing_to_one(n, max_side):
    rng = np.random.default_rng(n)
    w = np.tril(rng.random((n, n))) + np.tril(np.full((n, n), 1e-3))
    w /= w.sum(axis=1, keepdims=True)
    pooled, f = pool_matrix(w, max_side, mode="share")
    assert f > 1 and max(pooled.shape) <= max_side
    np.testing.assert_allclose(pooled.sum(axis=1), 1.0, atol=1e-9)


def test_plain_mean_of_attention_rows_is_one_over_factor():
    # documents why attention heatmaps pool in "share" mode
    w = np.full((8, 8), 1 / 8)
    pooled, f = pool_matrix(w, 4)
    np.testing.assert_allclose(pooled.sum(axis=1), 1 / f)


def test_nan_cells_ignored_and_all_nan_blocks_stay_nan():
    m = np.array([[1.0, np.nan, 5.0, 5.0], [3.0, np.nan, 5.0, 5.0], [np.nan] * 4, [np.nan] * 4])
    pooled, _ = pool_matrix(m, 2)
    assert pooled[0, 0] == 2.0 and pooled[0, 1] == 5.0
    assert np.isnan(pooled[1, 0]) and np.isnan(pooled[1, 1])


def test_bad_input():
    with pytest.raises(ValueError):
        pool_matrix(np.ones(4), 2)
    with pytest.raises(ValueError):
        pool_matrix(np.ones((4, 4)), 2, mode="max")
    with pytest.raises(ValueError):
        pool_matrix(np.ones((4, 4)), 0)
