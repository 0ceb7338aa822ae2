"""Plugging :mod:`attnviz.engine.kernel` into transformers.

transformers looks attention up by name (``AttentionInterface``); the model
does not know which implementation runs.  We register ``"attnviz"``, plus a
mask function under the same name (without it our function would receive
``attention_mask=None``): it returns transformers' own boolean mask
(True = may attend), built by ``sdpa_mask`` with the causal-skip shortcut off.

The budget is *not* stored here: each forward call passes its own
:class:`~attnviz.engine.run.BudgetRun` as ``attnviz=...``, which
transformers hands to every attention layer with the other kwargs.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.masking_utils import sdpa_mask

from .kernel import attend

__all__ = ["ATTN_IMPL", "ensure_registered", "attnviz_attention"]

ATTN_IMPL = "attnviz"


def attnviz_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    attnviz=None,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers-compatible attention: returns ``(output (b, q, heads, d), weights)``."""
    if attention_mask is not None and attention_mask.dtype != torch.bool:
        attention_mask = attention_mask == 0  # an additive float mask: 0 where allowed
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    if attnviz is None:
        out, weights = attend(query, key, value, attention_mask, scaling)
    else:
        out, weights = attnviz.attend(module.layer_idx, query, key, value, attention_mask, scaling)
    return out.transpose(1, 2).contiguous(), weights


def _bool_mask(*args, **kwargs):
    """transformers' boolean mask, never skipped for causal models (we need it to know who sees whom)."""
    kwargs["allow_is_causal_skip"] = False
    return sdpa_mask(*args, **kwargs)


def ensure_registered() -> str:
    """Register ``"attnviz"`` (idempotent) and return the name to pass as ``attn_implementation``."""
    AttentionInterface.register(ATTN_IMPL, attnviz_attention)
    AttentionMaskInterface.register(ATTN_IMPL, _bool_mask)
    return ATTN_IMPL
