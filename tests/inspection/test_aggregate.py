"""Head aggregation and attention rollout, checked by hand on 2x2 and 3x3 maps."""

import numpy as np
import pytest
import torch

from attnviz.inspection.aggregate import add_residual_and_normalize, head_aggregate, rollout

W = np.array([[[0.2, 0.8], [0.6, 0.4]], [[0.4, 0.6], [1.0, 0.0]]])  # (heads 2, q 2, k 2)


def test_head_aggregate_numpy_and_torch():
    np.testing.assert_allclose(head_aggregate(W, "mean"), [[0.3, 0.7], [0.8, 0.2]])
    np.testing.assert_allclose(head_aggregate(W, "max"), [[0.4, 0.8], [1.0, 0.4]])
    t = torch.tensor(W, dtype=torch.float16)
    mean = head_aggregate(t, "mean")
    assert isinstance(mean, torch.Tensor) and mean.dtype == torch.float32
    torch.testing.assert_close(mean, torch.tensor([[0.3, 0.7], [0.8, 0.2]]), atol=1e-3, rtol=0)
    assert head_aggregate(W.astype(np.float16), "mean").dtype == np.float32
    with pytest.raises(ValueError):
        head_aggregate(W, "median")
    with pytest.raises(ValueError):
        head_aggregate(W[0], "mean")


def test_residual_step():
    # 0.5·A + 0.5·I, then rows renormalised (A's rows need not sum to 1, e.g. float16 rounding).
    np.testing.assert_allclose(add_residual_and_normalize(np.array([[2.0, 0.0], [1.0, 1.0]])),
                               [[1.0, 0.0], [1 / 3, 2 / 3]])
    np.testing.assert_allclose(add_residual_and_normalize(np.array([[1.0, 0.0], [0.5, 0.5]])),
                               [[1.0, 0.0], [0.25, 0.75]])
    np.testing.assert_allclose(add_residual_and_normalize(np.array([[0.0, 0.0], [2.0, 2.0]]), add_residual=False),
                               [[0.0, 0.0], [0.5, 0.5]])


def test_rollout_two_layers_order():
    a1 = np.array([[1.0, 0.0], [1.0, 0.0]])  # Â1 = [[1, 0], [.5, .5]]
    a2 = np.array([[0.5, 0.5], [0.5, 0.5]])  # Â2 = [[.75, .25], [.25, .75]]
    np.testing.assert_allclose(rollout([a1, a2]), [[0.875, 0.125], [0.625, 0.375]])  # Â2 · Â1
    np.testing.assert_allclose(rollout([a2, a1]), [[0.75, 0.25], [0.5, 0.5]])  # Â1 · Â2
    np.testing.assert_allclose(rollout([a1]), [[1.0, 0.0], [0.5, 0.5]])


def test_rollout_causal_3x3():
    a1 = np.array([[1, 0, 0], [1 / 2, 1 / 2, 0], [1 / 3, 1 / 3, 1 / 3]])
    a2 = np.array([[1.0, 0, 0], [1, 0, 0], [1, 0, 0]])
    # Â1 = [[1,0,0],[1/4,3/4,0],[1/6,1/6,2/3]], Â2 = [[1,0,0],[1/2,1/2,0],[1/2,0,1/2]]
    expected = [[1, 0, 0], [5 / 8, 3 / 8, 0], [7 / 12, 1 / 12, 1 / 3]]
    np.testing.assert_allclose(rollout([a1, a2]), expected)
    np.testing.assert_allclose(rollout([a1, a2], add_residual=False), [[1, 0, 0]] * 3)
    got = rollout([torch.tensor(a1, dtype=torch.float16), torch.tensor(a2, dtype=torch.float16)])
    np.testing.assert_allclose(got, expected, atol=1e-3)


def test_rollout_random_causal_maps():
    rng = np.random.default_rng(0)
    maps = []
    for _ in range(30):
        a = np.tril(rng.random((16, 16)))
        maps.append(a / a.sum(-1, keepdims=True))
    r = rollout(maps)
    np.testing.assert_allclose(r.sum(-1), np.ones(16))
    assert np.array_equal(r, np.tril(r))
    r32 = rollout(maps, dtype=np.float32)
    assert r32.dtype == np.float32
    np.testing.assert_allclose(r32, r, atol=1e-5)


def test_rollout_rejects_bad_input():
    with pytest.raises(ValueError):
        rollout([])
    with pytest.raises(ValueError):
        rollout([np.ones((2, 3))])
    with pytest.raises(ValueError):
        rollout([np.eye(2), np.eye(3)])
