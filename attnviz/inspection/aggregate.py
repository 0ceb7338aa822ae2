"""Combining attention maps: over heads, and over layers (attention rollout).

* :func:`head_aggregate` -- one ``(q, k)`` map from a layer's ``(heads, q, k)`` weights.
* :func:`rollout` -- attention rollout (Abnar & Zuidema, 2020, "Quantifying
  Attention Flow in Transformers"): how much each output token draws, through
  all layers, on each input token, if attention were the only way information
  moves (the residual stream counted as attention to oneself).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

__all__ = ["head_aggregate", "rollout", "add_residual_and_normalize"]

ArrayLike = np.ndarray | torch.Tensor


def head_aggregate(weights: ArrayLike, how: Literal["mean", "max"] = "mean") -> ArrayLike:
    """Combine a layer's heads: ``(heads, q, k)`` -> ``(q, k)``, the mean or the max over heads.

    Returns the same kind as given (numpy array or torch tensor); float16 input
    is averaged in float32 and returned as float32 (max keeps the dtype).
    """
    if how not in ("mean", "max"):
        raise ValueError(f"how must be 'mean' or 'max', got {how!r}")
    if weights.ndim != 3:
        raise ValueError(f"expected weights of shape (heads, q, k), got {tuple(weights.shape)}")
    if isinstance(weights, torch.Tensor):
        return weights.float().mean(0) if how == "mean" else weights.amax(0)
    w = np.asarray(weights)
    return w.mean(0, dtype=np.float32 if w.dtype == np.float16 else None) if how == "mean" else w.max(0)


def _to_numpy(a: ArrayLike, dtype: np.dtype) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().float().cpu().numpy()
    return np.asarray(a, dtype=dtype)


def add_residual_and_normalize(attention: np.ndarray, add_residual: bool = True) -> np.ndarray:
    """``Â = 0.5·A + 0.5·I`` (if ``add_residual``), rows renormalised to sum 1 (all-zero rows left zero)."""
    a = attention.copy()
    if add_residual:
        a *= 0.5
        a[np.diag_indices(min(a.shape))] += 0.5
    sums = a.sum(-1, keepdims=True)
    return np.divide(a, sums, out=np.zeros_like(a), where=sums > 0)


def rollout(layer_means: Sequence[ArrayLike], add_residual: bool = True, dtype: type = np.float64) -> np.ndarray:
    """Attention rollout over layers ``1..L`` (given in forward order): an ``(n, n)`` array.

    Args:
        layer_means: one ``(n, n)`` attention map per layer, first layer first
            (e.g. :class:`attnviz.inspection.observe.LayerSummary` ``head_mean``; numpy or
            torch, any float dtype).
        add_residual: model the residual connection as ``Â = 0.5·A + 0.5·I``
            (rows renormalised), as in Abnar & Zuidema; if False, ``Â = A``
            (rows still renormalised to absorb float16 rounding).
        dtype: compute dtype (``np.float32`` is about twice as fast; see benchmarks/README.md).

    Returns:
        ``R = Â_L · … · Â_2 · Â_1``: row ``i`` is output token ``i``'s
        attribution over input tokens ``j`` (columns); every row sums to 1
        (unless some layer had an all-zero row).  Causal maps give a
        lower-triangular result.
    """
    if not layer_means:
        raise ValueError("rollout needs at least one layer")
    result = None
    for a in layer_means:
        step = add_residual_and_normalize(_to_numpy(a, dtype), add_residual)
        if step.ndim != 2 or step.shape[0] != step.shape[1]:
            raise ValueError(f"rollout needs square (n, n) maps, got {step.shape}")
        if result is not None and step.shape != result.shape:
            raise ValueError(f"layer maps differ in shape: {step.shape} vs {result.shape}")
        result = step if result is None else step @ result
    return result
