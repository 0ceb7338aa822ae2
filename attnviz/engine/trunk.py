"""Running a transformers model's trunk with a budget and an optional KV cache.

Shared by :mod:`attnviz.measure` (whole texts) and :mod:`attnviz.generate`
(token-by-token decoding).  The trunk (``model.base_model``) returns last
hidden states; the output layer is applied separately so logits can be made
only where needed, and in chunks.
"""

from __future__ import annotations

import inspect
import time
from functools import cache

import torch

from .run import BudgetRun

__all__ = ["trunk_and_head", "run_trunk", "next_token_logprobs", "make_cache", "cache_tensors"]


def trunk_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    """(trunk, output layer); the output layer is None for encoders loaded without a head."""
    base = model.base_model
    return base, (model.get_output_embeddings() if base is not model else None)


@cache
def _cache_kwarg(cls: type) -> str:
    """transformers 5 renamed ``past_key_values`` to ``cache`` in some models, not all."""
    params = inspect.signature(cls.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def make_cache(model: torch.nn.Module, layers: list[tuple[torch.Tensor, torch.Tensor]] | None = None):
    """A ``DynamicCache`` for ``model``, optionally filled with per-layer ``(keys, values)``."""
    from transformers import DynamicCache

    return DynamicCache(ddp_cache_data=layers, config=model.config) if layers else DynamicCache(config=model.config)


def cache_tensors(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-layer ``(keys, values)``, each ``(batch, kv_heads, length, d_head)``."""
    return [(layer.keys, layer.values) for layer in cache.layers]


def run_trunk(model: torch.nn.Module, ids: torch.Tensor, run: BudgetRun, cache=None,
              position_ids: torch.Tensor | None = None, keep_cache: bool = False):
    """Last hidden states ``(batch, len, hidden)``, the cache (or None) and the measured wall time in seconds.

    ``cache`` holds earlier tokens (then ``ids`` are only the new ones); pass
    ``position_ids`` when the cache was compressed and no longer tells positions.
    """
    base, _ = trunk_and_head(model)
    if keep_cache and cache is None:
        cache = make_cache(model)
    kwargs = {_cache_kwarg(type(base)): cache} if cache is not None else {}
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = base(input_ids=ids, position_ids=position_ids, attnviz=run, use_cache=cache is not None, **kwargs)
    return out.last_hidden_state, cache, time.perf_counter() - t0


def next_token_logprobs(model: torch.nn.Module, hidden_rows: torch.Tensor, chunk: int = 128,
                        vocab_chunk: int = 2048) -> torch.Tensor:
    """log-softmax over the vocabulary ``(rows, vocab)`` (float32) from hidden states ``(rows, hidden)``.

    See :func:`attnviz.measure.metrics.log_softmax_rows`; ``chunk`` rows at a time keep memory flat.
    """
    from ..measure.metrics import log_softmax_rows  # imported here: attnviz.measure imports this module

    _, head = trunk_and_head(model)
    with torch.inference_mode():
        return torch.cat([log_softmax_rows(hidden_rows[a:a + chunk], head.weight, head.bias, vocab_chunk)
                          for a in range(0, hidden_rows.shape[0], chunk)])
