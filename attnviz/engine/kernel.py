"""attnviz's own scaled dot-product attention, in plain PyTorch.

One function, :func:`attend`, does the maths for every caller:

* the real models, through :mod:`attnviz.engine.hf_attention` (registered with
  transformers' ``AttentionInterface``), with a keep mask from a budget policy;
* the step-by-step page, through :func:`attention_steps`, on small hand-given
  vectors, returning every intermediate.

Shapes follow transformers' convention:
``query`` is ``(batch, q_heads, q_len, d_head)``, ``key``/``value`` are
``(batch, kv_heads, k_len, d_head)``.  Grouped-query attention is handled by
viewing the query heads as ``(kv_heads, group)`` instead of copying the keys
(``repeat_kv`` would copy ``group`` times); query head ``h`` reads KV head
``h // group``, exactly as ``repeat_kv`` does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["attend", "attention_scores", "masked_softmax", "attention_steps", "AttentionSteps"]


def attention_scores(query: torch.Tensor, key: torch.Tensor, scaling: float) -> torch.Tensor:
    """Scaled scores ``scaling * Q Kᵀ``, shape ``(batch, q_heads, q_len, k_len)``.

    ``key`` may have fewer heads than ``query`` (GQA): they are shared by groups
    of consecutive query heads without being copied.
    """
    b, hq, lq, d = query.shape
    hkv, lk = key.shape[1], key.shape[2]
    if hq % hkv:
        raise ValueError(f"{hq} query heads cannot share {hkv} key/value heads evenly")
    g = hq // hkv
    # (b, hkv, g*lq, d) @ (b, hkv, d, lk): one batched matmul per KV head.
    q = query.reshape(b, hkv, g * lq, d)
    if scaling != 1.0:
        q = q * scaling
    return torch.matmul(q, key.transpose(-1, -2)).view(b, hq, lq, lk)


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last axis, restricted to ``mask`` (True = key may be used).

    Masked scores are set to -inf before the softmax, so the weights are
    renormalised over the kept keys.  A row with no kept key gives zeros
    (as PyTorch's SDPA does), never NaN.
    """
    if mask is None:
        return torch.softmax(scores, dim=-1)
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    # exp(-inf - -inf) = NaN only on rows where every key is masked.
    return torch.nan_to_num_(weights, nan=0.0)


def mix_values(weights: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Weighted sum of values: ``(b, hq, lq, lk) @ (b, hkv, lk, d) -> (b, hq, lq, d)``."""
    b, hq, lq, lk = weights.shape
    hkv, d = value.shape[1], value.shape[3]
    g = hq // hkv
    out = torch.matmul(weights.view(b, hkv, g * lq, lk), value)
    return out.view(b, hq, lq, d)


def attend(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None = None,
    scaling: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention with an optional boolean mask.

    Args:
        query: ``(batch, q_heads, q_len, d_head)``.
        key, value: ``(batch, kv_heads, k_len, d_head)``; ``q_heads`` must be a
            multiple of ``kv_heads``.
        mask: bool, broadcastable to ``(batch, q_heads, q_len, k_len)``; True
            where the query may use the key (the model's own causal/padding mask
            combined with a policy's keep mask).  None means every key.
        scaling: score scale, default ``1/sqrt(d_head)``.

    Returns:
        ``(output, weights)``: output ``(batch, q_heads, q_len, d_head)`` and
        weights ``(batch, q_heads, q_len, k_len)``, rows summing to 1 (or 0 for a
        row with no usable key).
    """
    if scaling is None:
        scaling = 1.0 / math.sqrt(query.shape[-1])
    weights = masked_softmax(attention_scores(query, key, scaling), mask)
    return mix_values(weights, value), weights


@dataclass(frozen=True)
class AttentionSteps:
    """Every intermediate of one attention computation (single head, no batch).

    Shapes: ``q`` (n_q, d), ``k`` and ``v`` (n_k, d), ``scores``/``scaled``/
    ``masked``/``weights`` (n_q, n_k), ``mask`` bool (n_q, n_k), ``output`` (n_q, d_v).
    """

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    scores: torch.Tensor
    scale: float
    scaled: torch.Tensor
    mask: torch.Tensor
    masked: torch.Tensor
    weights: torch.Tensor
    output: torch.Tensor


def attention_steps(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    keep: torch.Tensor | None = None,
) -> AttentionSteps:
    """Run :func:`attend` on small hand-given vectors and return every step.

    ``q`` is ``(n_q, d)`` (a 1-D vector is one query), ``k`` ``(n_k, d)``,
    ``v`` ``(n_k, d_v)``.  ``causal`` lets query ``i`` see keys ``j <= i``
    (aligned to the end, as in decoding); ``keep`` is an optional bool
    ``(n_q, n_k)`` keep mask from a budget.  The returned output is the same
    tensor :func:`attend` computes, so this page shows the real kernel.
    """
    q, k, v = (torch.as_tensor(x, dtype=torch.float64) for x in (q, k, v))
    q, k, v = (x.unsqueeze(0) if x.dim() == 1 else x for x in (q, k, v))
    for name, x in (("queries", q), ("keys", k), ("values", v)):
        if x.dim() != 2:
            raise ValueError(f"{name} must be a vector or a matrix (one row per token), got shape {tuple(x.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"queries have {q.shape[-1]} dimensions but keys have {k.shape[-1]}; they must match")
    if k.shape[0] != v.shape[0]:
        raise ValueError(f"there are {k.shape[0]} keys but {v.shape[0]} values; each key needs one value")
    n_q, n_k = q.shape[0], k.shape[0]
    mask = torch.ones(n_q, n_k, dtype=torch.bool)
    if causal:
        mask = torch.ones(n_q, n_k, dtype=torch.bool).tril(diagonal=n_k - n_q)
    if keep is not None:
        keep = torch.as_tensor(keep, dtype=torch.bool)
        if keep.shape != (n_q, n_k):
            raise ValueError(f"the keep mask must have shape ({n_q}, {n_k}) (queries x keys), got {tuple(keep.shape)}")
        mask = mask & keep
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = q @ k.T
    scaled = scores * scale
    output, weights = attend(q[None, None], k[None, None], v[None, None], mask[None, None], scale)
    return AttentionSteps(
        q=q, k=k, v=v, scores=scores, scale=scale, scaled=scaled, mask=mask,
        masked=scaled.masked_fill(~mask, float("-inf")), weights=weights[0, 0], output=output[0, 0],
    )
