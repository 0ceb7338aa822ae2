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
from dataclasses import dataclass, field, replace

import torch

from .budget import Budget
from .engine.run import BudgetRun
from .engine.trunk import cache_tensors, make_cache, next_token_logprobs, run_trunk
from .engine.workers import side_by_side
from .measure.compute import model_shape
from .policies import LayerView
from .text import DEFAULT_MAX_TOKENS, TextError, encode

__all__ = ["DecodeState", "Generation", "generate", "generate_each", "first_divergence"]


@dataclass(frozen=True)
class DecodeState:
    """What continuing a continuation needs, after its last new token was predicted but before it joined the cache.

    ``layers``: per layer ``(keys, values)``, each ``(1, kv_heads, cached, d_head)``; evicting policies also
    keep, per layer, the text ``positions`` of the cached keys and their accumulated attention ``acc`` (h2o's
    scores; zeros for window policies), each ``(kv_heads, cached)``, and their cache ``size`` in keys (0: the
    whole cache is kept).  Never changed in place: a resumed decode builds new tensors (torch.cat, gather),
    so one state may be shared by sessions and threads.  Its size is :attr:`nbytes`.
    """

    layers: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    positions: tuple[torch.Tensor, ...] = ()
    acc: tuple[torch.Tensor, ...] = ()
    size: int = 0

    @property
    def keys(self) -> int:
        """Cached keys, summed over layers and KV heads."""
        return sum(int(k.shape[1] * k.shape[2]) for k, _ in self.layers)

    @property
    def nbytes(self) -> int:
        """Bytes held: the cache tensors plus the eviction bookkeeping."""
        tensors = [t for kv in self.layers for t in kv] + list(self.positions) + list(self.acc)
        return sum(t.numel() * t.element_size() for t in tensors)


@dataclass
class Generation:
    """One greedy continuation.

    ``new_ids``: generated token ids (the last is the tokenizer's end-of-sequence id when ``ended``);
    ``kv_keys``: cached keys (summed over layers and KV heads) when each new token was predicted;
    ``kv_bytes`` the same in bytes (counted, not measured); ``elapsed``: measured wall time in seconds
    from the start of decoding until each new token was chosen (summed over the calls that made it, when
    it was resumed); ``steps_run``: decode steps (one trunk call for one token each) run by the call that
    made this object, the prompt's pass not included; ``reused``: new tokens it took over from the continuation
    it resumed (0: decoded from the prompt); ``state``: what :func:`generate` needs to resume it
    (None for a :meth:`prefix` shorter than what was decoded).
    """

    budget: Budget
    prompt_ids: list[int]
    new_ids: list[int] = field(default_factory=list)
    kv_keys: list[int] = field(default_factory=list)
    bytes_per_key: int = 0
    elapsed: list[float] = field(default_factory=list)
    truncated_from: int | None = None
    ended: bool = False
    steps_run: int = 0
    reused: int = 0
    state: DecodeState | None = field(default=None, repr=False, compare=False)

    @property
    def kv_bytes(self) -> list[int]:
        return [k * self.bytes_per_key for k in self.kv_keys]

    @property
    def seconds(self) -> float:
        """Measured wall time of the whole continuation (prompt pass and every decode step), in seconds."""
        return self.elapsed[-1] if self.elapsed else 0.0

    def prefix(self, n: int) -> Generation:
        """The first ``n`` new tokens: exactly what :func:`generate` makes for ``n`` from the same prompt ids.

        Greedy decoding is deterministic and token ``i`` depends only on the prompt and tokens before it, so
        cutting a longer continuation is exact.  Returns ``self`` when it has no more than ``n`` tokens.
        """
        if n >= len(self.new_ids):
            return self
        return replace(self, new_ids=self.new_ids[:n], kv_keys=self.kv_keys[:n], elapsed=self.elapsed[:n],
                       ended=False, steps_run=0, reused=min(self.reused, n), state=None)


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
             max_tokens: int = DEFAULT_MAX_TOKENS, resume: Generation | None = None) -> Generation:
    """Continue ``prompt`` greedily for up to ``max_new_tokens`` under ``budget`` (causal models only).

    Stops early at the tokenizer's end-of-sequence token.  The prompt is capped
    so that prompt + new tokens fit ``max_tokens`` and the model's own limit.

    ``resume``: an earlier continuation of the same prompt under the same budget.  When its prompt ids are
    the ones this call would read (a longer request may cut a long prompt shorter: then it starts afresh),
    the result is its :meth:`~Generation.prefix` if it already has ``max_new_tokens`` tokens or ended, else it
    is continued from its :class:`DecodeState`, one decode step per missing token; ``resume`` itself is left
    unchanged.
    """
    if not lm.causal:
        raise TextError("generation needs a causal (left-to-right) language model; this one is an encoder")
    policy = budget.policy
    budget.check_layers(model_shape(lm.model).layers)
    policy.validate(budget, causal=True)
    if max_new_tokens < 1:
        raise TextError("ask for at least one new token")
    cap = min(max_tokens, lm.max_positions) - max_new_tokens
    if cap < 1:
        raise TextError(f"{max_new_tokens} new tokens leave no room for a prompt within {max_tokens} tokens")
    enc = encode(lm.tokenizer, prompt, max_tokens=cap)
    prompt_ids = enc.ids[0].tolist()
    if resume is not None and resume.budget != budget:
        raise ValueError(f"cannot resume a continuation under {resume.budget.label} with {budget.label}")
    if resume is not None and resume.prompt_ids == prompt_ids:
        if resume.ended or len(resume.new_ids) >= max_new_tokens:
            cut = resume.prefix(max_new_tokens)
            return replace(cut, steps_run=0, reused=len(cut.new_ids))
        if resume.state is not None:
            out = replace(resume, new_ids=list(resume.new_ids), kv_keys=list(resume.kv_keys),
                          elapsed=list(resume.elapsed), steps_run=0, reused=len(resume.new_ids), state=None)
            return _decode(lm, out, resume.state, None, max_new_tokens)

    shape = model_shape(lm.model)
    out = Generation(budget=budget, prompt_ids=prompt_ids, truncated_from=enc.truncated_from,
                     bytes_per_key=2 * shape.d_head * shape.bytes_per_value)
    t0 = time.perf_counter()
    n = enc.n_tokens
    run = BudgetRun([budget], causal=True)
    hidden, cache, _ = run_trunk(lm.model, enc.ids, run, keep_cache=True)
    if policy.evicts:
        state = _compress_after_prompt(cache, run, budget, n, shape)
    else:
        state = DecodeState(layers=tuple(cache_tensors(cache)))
    return _decode(lm, out, state, hidden[0, -1:], max_new_tokens, time.perf_counter() - t0)


def _decode(lm, out: Generation, state: DecodeState, hidden: torch.Tensor | None, max_new_tokens: int,
            spent: float = 0.0) -> Generation:
    """Greedy steps until ``out`` has ``max_new_tokens`` tokens or the model ends the text; returns ``out``.

    ``hidden`` ``(1, hidden)``: the prompt's last hidden state, for the first token; None to resume, when
    ``out.new_ids[-1]`` has been predicted but not yet fed (``state`` is the cache without it).
    ``spent``: seconds already spent on this call (the prompt's pass).
    """
    eos = lm.tokenizer.eos_token_id
    shape = model_shape(lm.model)
    before = out.seconds
    t0 = time.perf_counter() - spent
    n = len(out.prompt_ids)
    cache = None  # built from the state's tensors when first needed; one object per call, never shared
    while True:
        if hidden is None:  # feed the last new token: one decode step
            state, cache, hidden = _step(lm, state, cache, out.new_ids[-1], n + len(out.new_ids) - 1, out.budget,
                                         shape)
            out.steps_run += 1
        token = int(next_token_logprobs(lm.model, hidden).argmax(-1))
        out.kv_keys.append(state.keys)
        out.new_ids.append(token)
        out.elapsed.append(before + time.perf_counter() - t0)
        if token == eos:
            out.ended = True
            break
        if len(out.new_ids) >= max_new_tokens:
            break
        hidden = None
    out.state = state
    return out


def _step(lm, state: DecodeState, cache, token: int, pos: int, budget: Budget, shape):
    """Feed ``token`` at text position ``pos``: returns the new state, the cache object and its hidden state
    ``(1, hidden)``.  ``state``'s tensors are left as they were (a shared state may be resumed by others)."""
    policy = budget.policy
    layers, positions, acc = list(state.layers), list(state.positions), list(state.acc)
    if policy.evicts:
        if positions[0].shape[-1] >= state.size:  # full: one victim per KV head leaves before the new key joins
            victims = [policy.decode_victim(p, a, pos, budget, state.size)
                       for p, a in zip(positions, acc, strict=True)]
            layers = [(_drop_slot(k, vic), _drop_slot(v, vic)) for (k, v), vic in zip(layers, victims, strict=True)]
            positions = [_drop_slot(p, vic) for p, vic in zip(positions, victims, strict=True)]
            acc = [_drop_slot(a, vic) for a, vic in zip(acc, victims, strict=True)]
            cache = None
        # The cache now *is* the kept set: attend to all of it.
        capture = "all" if policy.decode_needs_attention else None
        step_run = BudgetRun([Budget("full")], causal=True, capture=capture)
    else:
        step_run = BudgetRun([budget], causal=True)
    if cache is None:  # DynamicCache grows by torch.cat: the tensors it starts from are never written to
        cache = make_cache(lm.model, layers)
    hidden, cache, _ = run_trunk(lm.model, torch.tensor([[token]]), step_run, cache=cache,
                                 position_ids=torch.tensor([[pos]]))
    if policy.evicts:
        positions = [torch.cat([p, torch.full((p.shape[0], 1), pos)], dim=1) for p in positions]
        acc = [torch.cat([a, torch.zeros(a.shape[0], 1, dtype=a.dtype)], dim=1) for a in acc]
        for layer, w in step_run.weights.items():  # (1, q_heads, 1, cache): this step's attention
            acc[layer] += w[0, :, 0].float().view(shape.kv_heads, -1, w.shape[-1]).sum(1)  # acc[layer] is new
    new = DecodeState(layers=tuple(cache_tensors(cache)), positions=tuple(positions), acc=tuple(acc),
                      size=state.size)
    return new, cache, hidden[0, -1:]


def generate_each(lm, prompt: str, budgets: list[Budget], max_new_tokens: int = 32,
                  max_tokens: int = DEFAULT_MAX_TOKENS,
                  resume: list[Generation | None] | None = None) -> list[Generation]:
    """:func:`generate` for each budget, in order; side by side, one core each, where the machine has two.

    Decoding works on one token at a time: its matrix products are too small to keep two cores busy, so
    two continuations side by side take about as long as one alone on both cores (benchmarks/README.md).
    Each ``seconds`` is then the
    wall time of its continuation while the other ran beside it.  An error in any is raised.
    ``resume``: per budget, an earlier continuation to resume (see :func:`generate`) or None.
    """
    resume = resume or [None] * len(budgets)
    pool = side_by_side() if len(budgets) > 1 else None
    if pool is None:
        return [generate(lm, prompt, b, max_new_tokens, max_tokens, r) for b, r in zip(budgets, resume, strict=True)]
    futures = [pool.submit(generate, lm, prompt, b, max_new_tokens, max_tokens, r)
               for b, r in zip(budgets, resume, strict=True)]
    try:
        return [f.result() for f in futures]
    finally:
        for f in futures:  # after an error: drop what has not begun
            f.cancel()


def _compress_after_prompt(cache, run: BudgetRun, budget: Budget, n: int, shape) -> DecodeState:
    """Cut the prompt's cache to the keys its last token kept, per layer and KV head: the decode state with,
    per layer, the kept positions and their accumulated attention (h2o's scores; zeros for window policies)."""
    kv = cache_tensors(cache)
    layers, positions, accs = [], [], []
    for layer, (k, v) in enumerate(kv):
        view = LayerView(layer=layer, causal=True, group=shape.q_heads // shape.kv_heads, memo=run.policy_memo(0))
        last, acc = budget.policy.prompt_cache(budget.for_layer(layer), n, shape.kv_heads, view)
        slots = torch.arange(n).expand(shape.kv_heads, -1)[last].view(shape.kv_heads, -1)
        layers.append((_gather_slots(k, slots), _gather_slots(v, slots)))
        positions.append(slots.clone())
        accs.append(torch.gather(acc.float(), 1, slots))
    return DecodeState(layers=tuple(layers), positions=tuple(positions), acc=tuple(accs),
                       size=budget.policy.cache_size(budget, n))
