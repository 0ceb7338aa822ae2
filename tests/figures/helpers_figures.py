"""Shared bits for the figure tests."""

import numpy as np


def causal_attention(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = np.tril(rng.random((n, n)) ** 3) + np.tril(np.full((n, n), 1e-6))
    w[:, 0] += 1.0
    return w / w.sum(axis=1, keepdims=True)


DUP_LABELS = ["The", "cat", "saw", "the", "cat", "the", "猫", "🐱‍👤"]
NASTY = '<b>&"'
