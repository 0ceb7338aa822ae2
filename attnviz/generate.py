"""Greedy decoding under an attention budget (our own loop: ``generate()`` rejects extra kwargs).

* Policies that do not evict (``topk``, ``topp``, ``random``, ``full``) keep the
  whole KV cache and apply the policy to each new query's row over it.
* Evicting policies (``window``, ``sink_window``, ``h2o``: :attr:`Policy.evicts`)
  keep a cache of a fixed size ``K`` and really drop keys from it: after the
  prompt, the cache is cut to what the policy keeps (:meth:`Policy.prompt_cache`);
  before each new token joins a full cache, the policy names one victim per KV
  head (:meth:`Policy.decode_victim`), which is removed from the cache tensors.
  A policy that evicts by attention received (``h2o``) gets each step's
  attention added to its keys' scores.  With a ratio budget, ``K = ceil(R * prompt tokens)``.

Every step's KV-cache size is *counted* (keys held, summed over layers and KV
heads); bytes = keys x 2 (K and V) x d_head x bytes per value.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from .budget import Budget
from .engine.run import BudgetRun
from .engine.trunk import cache_tensors, make_cache, next_token_logprobs, run_trunk
from .engine.workers import side_by_side
from .measure.compute import model_shape
from .policies import LayerView
from .text import DEFAULT_MAX_TOKENS, TextError, encode

__all__ = ["Generation", "generate", "generate_each", "first_divergence"]


@dataclass
class Generation:
    """One greedy continuation.

    ``new_ids``: generated token ids; ``kv_keys``: cached keys (summed over
    layers and KV heads) when each new token was predicted; ``kv_bytes`` the
    same in bytes (counted, not measured); ``seconds`` measured wall time.
    """

    budget: Budget
    prompt_ids: list[int]
    new_ids: list[int] = field(default_factory=list)
    kv_keys: list[int] = field(default_factory=list)
    bytes_per_key: int = 0
    seconds: float = 0.0
    truncated_from: int | None = None

    @property
    def kv_bytes(self) -> list[int]:
        return [k * self.bytes_per_key for k in self.kv_keys]


def first_divergence(a: list[int], b: list[int]) -> int | None:
    """Index of the first differing token of two continuations (None if one is a prefix of the other)."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None


def _gather_slots(t: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
    """Pick ``slots`` ``(kv_heads, m)`` along the sequence axis of ``t`` ``(1, kv_heads, L, d)``."""
    return torch.gather(t, 2, slots[None, :, :, None].expand(1, -1, -1, t.shape[-1]))


def _drop_slot(t: torch.Tensor, victim: torch.Tensor) -> torch.Tensor:
    """Remove one slot per KV head (``victim`` ``(kv_heads,)``) from ``(..., kv_heads, L, ...)``-shaped data."""
    length = t.shape[-2] if t.dim() == 4 else t.shape[-1]
    keep = torch.arange(length).expand(victim.shape[0], -1)
    keep = keep[keep != victim[:, None]].view(victim.shape[0], length - 1)
    return _gather_slots(t, keep) if t.dim() == 4 else torch.gather(t, 1, keep)


def generate(lm, prompt: str, budget: Budget, max_new_tokens: int = 32,
             max_tokens: int = DEFAULT_MAX_TOKENS) -> Generation:
    """Continue ``prompt`` greedily for up to ``max_new_tokens`` under ``budget`` (causal models only).

    Stops early at the tokenizer's end-of-sequence token.  The prompt is capped
    so that prompt + new tokens fit ``max_tokens`` and the model's own limit.
    """
    if not lm.causal:
        raise TextError("generation needs a causal (left-to-right) language model; this one is an encoder")
    policy = budget.policy
    policy.validate(budget, causal=True)
    if max_new_tokens < 1:
        raise TextError("ask for at least one new token")
    cap = min(max_tokens, lm.max_positions) - max_new_tokens
    if cap < 1:
        raise TextError(f"{max_new_tokens} new tokens leave no room for a prompt within {max_tokens} tokens")
    enc = encode(lm.tokenizer, prompt, max_tokens=cap)
    ids = enc.ids
    n = enc.n_tokens
    shape = model_shape(lm.model)
    out = Generation(budget=budget, prompt_ids=ids[0].tolist(), truncated_from=enc.truncated_from,
                     bytes_per_key=2 * shape.d_head * shape.bytes_per_value)
    eos = lm.tokenizer.eos_token_id
    t0 = time.perf_counter()

    run = BudgetRun([budget], causal=True)
    hidden, cache, _ = run_trunk(lm.model, ids, run, keep_cache=True)
    size = policy.cache_size(budget, n) if policy.evicts else 0
    if policy.evicts:
        cache, positions, acc = _compress_after_prompt(lm.model, cache, run, budget, n, shape)
    for step in range(max_new_tokens):
        token = int(next_token_logprobs(lm.model, hidden[0, -1:]).argmax(-1))
        kv = cache_tensors(cache)
        out.kv_keys.append(sum(int(k.shape[1] * k.shape[2]) for k, _ in kv))
        out.new_ids.append(token)
        if token == eos or step == max_new_tokens - 1:
            break
        pos = n + step
        if policy.evicts:
            if positions[0].shape[-1] >= size:  # full: one victim per KV head leaves before the new key joins
                victims = [policy.decode_victim(p, a, pos, budget, size) for p, a in zip(positions, acc, strict=True)]
                cache = make_cache(lm.model, [(_drop_slot(k, vic), _drop_slot(v, vic))
                                              for (k, v), vic in zip(kv, victims, strict=True)])
                positions = [_drop_slot(p, vic) for p, vic in zip(positions, victims, strict=True)]
                acc = [_drop_slot(a, vic) for a, vic in zip(acc, victims, strict=True)]
            # The cache now *is* the kept set: attend to all of it.
            capture = "all" if policy.decode_needs_attention else None
            step_run = BudgetRun([Budget("full")], causal=True, capture=capture)
        else:
            step_run = BudgetRun([budget], causal=True)
        hidden, cache, _ = run_trunk(lm.model, torch.tensor([[token]]), step_run, cache=cache,
                                     position_ids=torch.tensor([[pos]]))
        if policy.evicts:
            positions = [torch.cat([p, torch.full((p.shape[0], 1), pos)], dim=1) for p in positions]
            acc = [torch.cat([a, torch.zeros(a.shape[0], 1, dtype=a.dtype)], dim=1) for a in acc]
            for layer, w in step_run.weights.items():  # (1, q_heads, 1, cache): this step's attention
                acc[layer] += w[0, :, 0].float().view(shape.kv_heads, -1, w.shape[-1]).sum(1)
    out.seconds = time.perf_counter() - t0
    return out


def generate_each(lm, prompt: str, budgets: list[Budget], max_new_tokens: int = 32,
                  max_tokens: int = DEFAULT_MAX_TOKENS) -> list[Generation]:
    """:func:`generate` for each budget, in order; side by side, one core each, where the machine has two.

    Decoding works on one token at a time: its matrix products are too small to keep two cores busy, so
    two continuations side by side take about as long as one alone on both cores (benchmarks/README.md).
    Each ``seconds`` is then the
    wall time of its continuation while the other ran beside it.  An error in any is raised.
    """
    pool = side_by_side() if len(budgets) > 1 else None
    if pool is None:
        return [generate(lm, prompt, b, max_new_tokens, max_tokens) for b in budgets]
    futures = [pool.submit(generate, lm, prompt, b, max_new_tokens, max_tokens) for b in budgets]
    try:
        return [f.result() for f in futures]
    finally:
        for f in futures:  # after an error: drop what has not begun
            f.cancel()


def _compress_after_prompt(model, cache, run: BudgetRun, budget: Budget, n: int, shape):
    """Cut the prompt's cache to the keys its last token kept, per layer and KV head.

    Returns the new cache and, per layer, the kept positions and their
    accumulated attention (h2o's scores; zeros for window policies), each
    ``(kv_heads, kept)``.
    """
    kv = cache_tensors(cache)
    layers, positions, accs = [], [], []
    for layer, (k, v) in enumerate(kv):
        view = LayerView(layer=layer, causal=True, group=shape.q_heads // shape.kv_heads, memo=run.policy_memo(0))
        last, acc = budget.policy.prompt_cache(budget.for_layer(layer), n, shape.kv_heads, view)
        slots = torch.arange(n).expand(shape.kv_heads, -1)[last].view(shape.kv_heads, -1)
        layers.append((_gather_slots(k, slots), _gather_slots(v, slots)))
        positions.append(slots.clone())
        accs.append(torch.gather(acc.float(), 1, slots))
    return make_cache(model, layers), positions, accs
