"""Run a model on a text under budgets: quality and compute, measured together.

Two steps, so an app can cache the first and rerun only the second when a
slider moves:

* :func:`reference_pass` -- full attention once (through our own kernel); keeps
  the full run's next-token log-probabilities (causal) or hidden states (encoder).
* :func:`budget_pass` -- one or more budgets, batched; each gives a :class:`Row`
  with ``quality`` and ``compute`` blocks and, if asked, attention weights.

:func:`sweep` does both for a text and returns the JSON-ready result the
command line prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, as_completed
from dataclasses import dataclass, field

import torch

from .budget import Budget
from .budget_context import BudgetRun, RowStats, Segment
from .compute import Shape, compute_costs, linear_params, model_shape
from .metrics import CausalSums, FullNext, FullTerms, encoder_quality, full_next, next_token_terms
from .text import DEFAULT_MAX_TOKENS, Encoded, encode
from .trunk import cache_tensors, make_cache, run_trunk, trunk_and_head
from .workers import side_by_side

__all__ = ["Reference", "Row", "attention_weights", "reference_pass", "budget_pass", "reference_and_budgets", "sweep",
           "validate_budgets", "encode_for", "default_batch_size"]

Capture = str | Iterable[int] | None


@dataclass
class Reference:
    """The full-attention run of one text (cache it: every budget is compared to it).

    ``next`` (causal, made for budgets): what budgets are compared against from the full
    run's next-token distributions at positions 0..n-2 (:class:`~attnviz.metrics.FullNext`;
    the ``(n-1, vocab)`` log-probabilities themselves are not kept).  ``hidden`` ``(n, hidden)``: last hidden states
    (an encoder's output; a causal model's output layer input).  ``weights`` maps captured layers to float16
    ``(q_heads, n, n)`` attention weights.  ``kv`` is the full run's KV cache
    (causal only), one ``(keys, values)`` pair per layer, each
    ``(1, kv_heads, n, d_head)``: budgets reuse its exact prefix.  ``queries``
    (causal only) the full run's scaled queries per layer, ``(1, q_heads, n, d_head)``:
    a policy that decides from earlier rows' attention (``h2o``) scores its prefix with them.
    """

    lm: object
    encoded: Encoded
    next: FullNext | None
    hidden: torch.Tensor | None
    stats: RowStats
    seconds: float
    shape: Shape
    dense_params: int
    weights: dict[int, torch.Tensor] = field(default_factory=dict)
    kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    queries: list[torch.Tensor] | None = None

    @property
    def ids(self) -> torch.Tensor:
        return self.encoded.ids

    @property
    def n_tokens(self) -> int:
        return self.encoded.n_tokens

    @property
    def top1(self) -> torch.Tensor | None:
        """The full model's predicted next token at positions 0..n-2 (causal only)."""
        return None if self.next is None else self.next.top1

    @property
    def full_terms(self) -> FullTerms | None:
        """What budgets' KL needs from the full run's next-token distributions, per position (causal only)."""
        return None if self.next is None else self.next.terms

    @property
    def ppl_full(self) -> float | None:
        """The full model's perplexity on the text (causal only)."""
        return None if self.next is None else self.next.ppl


@dataclass
class Row:
    """One budget's result.  ``quality``/``compute`` are the JSON blocks.

    ``weights``/``keep`` map captured layers to ``(q_heads, n, n)`` float16
    weights and bool keep masks; ``top1`` is the budgeted model's predicted next
    token per position (causal only).
    """

    budget: Budget
    density: float
    quality: dict
    compute: dict
    stats: RowStats
    top1: torch.Tensor | None = None
    weights: dict[int, torch.Tensor] = field(default_factory=dict)
    keep: dict[int, torch.Tensor] = field(default_factory=dict)

    def to_json(self) -> dict:
        """The JSON row: the budget's fields (:meth:`Budget.to_json`), density, quality and compute."""
        return {**self.budget.to_json(), "density": self.density, "quality": self.quality, "compute": self.compute}


def validate_budgets(budgets: Iterable[Budget], causal: bool) -> None:
    """Raise :class:`~attnviz.budget.BudgetError` (one line naming the policy and the reason) for the first
    budget unfit for a model with this masking: the one check every entry point makes before any work."""
    for b in budgets:
        b.policy.validate(b, causal)


def encode_for(lm, text: str, max_tokens: int = DEFAULT_MAX_TOKENS) -> Encoded:
    """Tokenize for ``lm``, capped at ``max_tokens`` and the model's own limit.

    Causal models need two tokens (one prediction); encoders one.
    """
    return encode(lm.tokenizer, text, max_tokens, lm.max_positions, min_tokens=2 if lm.causal else 1)


def reference_pass(lm, encoded: Encoded, capture: Capture = None, observers: Sequence = (),
                   for_budgets: bool = True) -> Reference:
    """Full attention through our kernel (equal to transformers' eager attention).

    ``observers`` see every layer's weights (see :class:`~attnviz.budget_context.BudgetRun`).
    ``for_budgets=False`` skips what only budgets are compared against (the full run's
    next-token facts, an output-layer pass, and the KV cache, 47 MB at 1024 tokens):
    for pictures of the full attention alone.
    """
    keep = lm.causal and for_budgets
    run = BudgetRun([Budget("full")], causal=lm.causal, capture=capture, observers=observers, keep_queries=keep)
    hidden, cache, seconds = run_trunk(lm.model, encoded.ids, run, keep_cache=keep)
    kv = cache_tensors(cache) if cache is not None else None
    t0 = time.perf_counter()
    nxt = _full_next(lm, hidden[0], encoded.ids) if lm.causal and for_budgets else None
    seconds += time.perf_counter() - t0
    weights = {layer: w[0] for layer, w in run.weights.items()}
    return Reference(lm=lm, encoded=encoded, next=nxt, hidden=hidden[0],
                     stats=run.stats[0], seconds=seconds, shape=model_shape(lm.model),
                     dense_params=linear_params(lm.model), weights=weights, kv=kv,
                     queries=[run.queries[layer] for layer in sorted(run.queries)] if keep else None)


def _full_next(lm, hidden: torch.Tensor, ids: torch.Tensor) -> FullNext:
    """The full run's next-token facts from its last hidden states ``(n, d)`` and token ids ``(1, n)``."""
    _, head = trunk_and_head(lm.model)
    return full_next(hidden[:-1], head.weight, head.bias, ids[0, 1:])


class _LastLayerDone(Exception):
    """Raised by an observer to end a forward once the last wanted layer is captured."""


def attention_weights(lm, encoded: Encoded, layers: Sequence[int] | None) -> dict[int, torch.Tensor]:
    """Float16 ``(q_heads, n, n)`` full-attention weights of ``layers`` (None: every layer).

    Lighter than :func:`reference_pass` for pictures: one trunk forward, no output
    layer (its log-probabilities alone are 200 MB at 1024 tokens), no KV cache,
    and it stops right after the last wanted layer.
    """
    last = None if layers is None else max(layers)

    def stop_after_last(layer, _weights, _keep) -> None:
        if layer == last:
            raise _LastLayerDone

    run = BudgetRun([Budget("full")], causal=lm.causal, capture="all" if layers is None else layers,
                    observers=[stop_after_last] if last is not None else [])
    try:
        run_trunk(lm.model, encoded.ids, run)
    except _LastLayerDone:
        pass
    return {layer: w[0] for layer, w in run.weights.items()}


def default_batch_size(n_tokens: int) -> int:
    """Budgets per batched pass when a pass cannot be packed (encoders, captured weights).

    Batching pays off on short texts, not on long ones (2 cores).
    """
    return max(1, min(8, 1024 // max(1, n_tokens)))


PACKED_TOKENS = 8192
"""At most this many recomputed tokens per packed pass (bounds activation memory)."""

PACKED_BUDGETS = 8
"""At most this many budgets per packed pass (so a long sweep reports progress as it goes)."""

SIDE_BY_SIDE_TOKENS = 256
"""Texts up to this long run their packed passes side by side (:func:`attnviz.workers.side_by_side`).

Measured for 48 budgets (6 policies) on 2 cores: 10-20% faster in one process; in the app's server, with the
browser on the same cores, 14.8-17.0 s against 17.8-20.6 s at 128 tokens. Each worker thread keeps its own
high-water mark of memory, so the peak grows with the text: +0.1 GB at 128 tokens, +0.2 GB at 256, +0.2-0.4 GB
at 512; longer texts run one pass at a time.
"""

ROW_GROUP = 512
"""Positions scored together by the output layer (with 2,048-word vocabulary chunks: 4 MB of logits)."""


def shared_prefix(lm, ref: Reference, budgets: Sequence[Budget], capture: Capture = None,
                  observers: Sequence = ()) -> int:
    """Leading tokens every budget in ``budgets`` leaves untouched (0 if none can be reused).

    Only causal models: there a token's hidden states depend on earlier tokens
    alone, so rows that keep every key equal the full run in every layer.
    Capturing or observing weights needs the whole matrix, so it disables reuse.
    """
    if not lm.causal or ref.kv is None or capture is not None or observers:
        return 0
    return min(_exact_prefixes(budgets, ref.n_tokens, resumable=False))


def budget_pass(lm, ref: Reference, budgets: Sequence[Budget], capture: Capture = None,
                batch_size: int | None = None, progress: Callable[[int, int], None] | None = None,
                observers: Sequence = (), pack: bool | None = None) -> list[Row]:
    """Evaluate ``budgets`` against ``ref``; one :class:`Row` each, in the order given.

    Budgets are validated for the model before any work (a
    :class:`~attnviz.budget.BudgetError` names the policy and reason).

    On a causal model (without ``observers``) budgets run *packed*: each
    budget recomputes only the tokens after the prefix it leaves untouched
    (those keep every key, so they are taken from the full run's KV cache:
    exact), and the recomputed tokens of several budgets go through the model
    as one long sequence, attention kept per budget.  Captured layers must be
    in ``ref.weights`` for that (the prefix rows are copied from there).
    Otherwise (``pack=False``, encoders, observers, captured layers the
    reference lacks) budgets run as batch rows, ``batch_size`` at a time.

    On short texts (:data:`SIDE_BY_SIDE_TOKENS`) packed passes run two at a time,
    one core each (:mod:`attnviz.workers`).

    ``seconds`` is the measured wall time of the budgeted forward (trunk and
    output layer), divided evenly among the budgets that shared a pass: a
    *mask simulation* of sparse attention, no faster than full attention.
    ``progress(done, total)`` is called after each pass, from the calling thread.
    """
    validate_budgets(budgets, lm.causal)  # fail fast, before any forward
    if lm.causal and ref.next is None:
        raise ValueError("this reference was made without what budgets are compared against (for_budgets=False)")
    can_pack = lm.causal and ref.kv is not None and not observers and _in_reference(capture, ref)
    if pack and not can_pack:
        raise ValueError("packed passes need a causal model's reference with its KV cache (and the weights of "
                         "every captured layer), and no observers")
    if pack is None:
        pack = can_pack
    prefix = _exact_prefixes(budgets, ref.n_tokens, ref.queries is not None) if pack else [0] * len(budgets)
    if pack:
        chunks = _packed_groups(ref.n_tokens, prefix, max_budgets=_budgets_per_pass(capture, ref))
    else:
        size = batch_size or default_batch_size(ref.n_tokens)
        chunks = [list(range(len(budgets)))[s:s + size] for s in range(0, len(budgets), size)]
    rows: dict[int, Row] = {}
    done = 0

    def run(idx: list[int]) -> list[Row]:
        chunk = [budgets[i] for i in idx]
        if pack:
            return _run_packed(lm, ref, chunk, [prefix[i] for i in idx], capture=capture)[1]
        return _run_batch(lm, ref, chunk, capture, observers)

    pool = side_by_side() if pack and len(chunks) > 1 and ref.n_tokens <= SIDE_BY_SIDE_TOKENS else None
    for idx, got in _each_pass(run, chunks, pool, [ref.n_tokens - p for p in prefix]):
        rows.update(zip(idx, got, strict=True))
        done += len(idx)
        if progress:
            progress(done, len(budgets))
    return [rows[i] for i in range(len(budgets))]


def _each_pass(run: Callable[[list[int]], list[Row]], chunks: list[list[int]], pool: Executor | None,
               recomputed: list[int]) -> Iterable[tuple[list[int], list[Row]]]:
    """``(chunk, run(chunk))`` for every chunk, as the passes finish.

    With a ``pool`` (:func:`attnviz.workers.side_by_side`) several passes run side by
    side, the largest first; their results come back here, to the calling thread
    (a Streamlit progress bar can only be updated from it).
    """
    if pool is None:
        for idx in chunks:
            yield idx, run(idx)
        return
    order = sorted(chunks, key=lambda idx: -sum(recomputed[i] for i in idx))
    futures = {pool.submit(run, idx): idx for idx in order}
    try:
        for fut in as_completed(futures):
            yield futures[fut], fut.result()
    finally:
        for fut in futures:  # the caller stopped early (an error, a Streamlit rerun): drop the passes not begun
            fut.cancel()


def _exact_prefixes(budgets: Sequence[Budget], n: int, resumable: bool = True) -> list[int]:
    """Per budget, the leading tokens it leaves untouched (taken from the full run instead of recomputed).

    ``resumable``: the full run's queries are at hand, so a policy that is not rowwise
    (``h2o``) can score its prefix rows without recomputing them (a packed pass); else 0 for it.
    """
    return [b.policy.exact_prefix(b, n) if b.policy.rowwise or resumable else 0 for b in budgets]


def _capture_layers(capture: Capture, layers: int) -> list[int]:
    """The layer indices ``capture`` names, in order (``"all"``: every one of ``layers``)."""
    if capture is None:
        return []
    return list(range(layers)) if capture == "all" else sorted(set(capture))


def _in_reference(capture: Capture, ref: Reference) -> bool:
    """Whether ``ref`` holds the weights of every layer in ``capture`` (a packed pass copies its prefix rows)."""
    return set(_capture_layers(capture, ref.shape.layers)) <= set(ref.weights)


CAPTURE_BYTES = 256 * 2**20
"""At most this many bytes of captured weights and keep masks per packed pass (at least one budget)."""


def _budgets_per_pass(capture: Capture, ref: Reference) -> int:
    """Budgets one packed pass may hold: :data:`PACKED_BUDGETS`, fewer when their captured weights are large."""
    layers = len(_capture_layers(capture, ref.shape.layers))
    per_budget = layers * ref.shape.q_heads * ref.n_tokens ** 2 * 3  # float16 weights + bool keep mask
    return max(1, min(PACKED_BUDGETS, CAPTURE_BYTES // per_budget)) if layers else PACKED_BUDGETS


def _packed_groups(n: int, prefixes: list[int], reserved: int = 0, max_budgets: int = PACKED_BUDGETS
                   ) -> list[list[int]]:
    """Budget indices per packed pass, in order: at most ``max_budgets`` budgets and
    :data:`PACKED_TOKENS` recomputed tokens each (``reserved`` of them already taken in the first)."""
    groups, cur, size = [], [], reserved
    for i, p in enumerate(prefixes):
        if cur and (size + n - p > PACKED_TOKENS or len(cur) == max_budgets):
            groups.append(cur)
            cur, size = [], 0
        cur.append(i)
        size += n - p
    return groups + [cur] if cur else groups


def _causal_qualities(lm, ref: Reference, pieces: Sequence[tuple[torch.Tensor | None, int]]
                      ) -> list[tuple[dict, torch.Tensor]]:
    """Quality and top-1 per position of budgeted runs whose first ``prefix`` tokens equal the full run.

    ``pieces``: one ``(hidden, prefix)`` per budget, ``hidden`` ``(n - prefix, d)``
    its last hidden states from token ``prefix`` on (None when nothing was
    recomputed).  Positions before ``prefix`` predict exactly as the full run.
    The output layer runs for every piece's positions together, in groups of
    :data:`ROW_GROUP` rows and chunks of the vocabulary (see
    :func:`~attnviz.metrics.next_token_terms`).
    """
    n = ref.n_tokens
    targets = ref.ids[0, 1:]
    starts = [min(p, n - 1) for _, p in pieces]  # positions 0..start-1 are the full run's
    rows = [h[:n - 1 - p] for (h, p), s in zip(pieces, starts, strict=True) if s < n - 1]
    if rows:
        hidden = torch.cat(rows)
        positions = torch.cat([torch.arange(s, n - 1) for s in starts if s < n - 1])
        _, head = trunk_and_head(lm.model)
        full = ref.full_terms
        terms = []
        with torch.inference_mode():
            for g in range(0, len(positions), ROW_GROUP):
                pos = positions[g:g + ROW_GROUP]
                terms.append(next_token_terms(hidden[g:g + ROW_GROUP], head.weight, head.bias, targets[pos],
                                              full.take(pos)))
        kl, top1, nll = (torch.cat(t) for t in zip(*terms, strict=True))
    out, at = [], 0
    for s in starts:
        sums = CausalSums()
        sums.add_identical(ref.next.target_logp[:s])
        m = n - 1 - s
        if m:
            sums.add_terms(kl[at:at + m], top1[at:at + m], ref.top1[s:], nll[at:at + m])
            out.append((sums.result(ref.ppl_full), torch.cat([ref.top1[:s], top1[at:at + m]])))
        else:
            out.append((sums.result(ref.ppl_full), ref.top1.clone()))
        at += m
    return out


def _run_packed(lm, ref: Reference | None, chunk: list[Budget], prefixes: list[int],
                encoded: Encoded | None = None, capture: Capture = None) -> tuple[Reference, list[Row]]:
    """One packed pass (see :func:`budget_pass`): the reference and the rows in the order of ``chunk``.

    With ``ref`` None the full run of ``encoded`` joins the pass as its first
    segment (one-shot sweeps): the budgets take their prefixes from its keys.
    ``capture`` needs ``ref`` to hold those layers' weights (its prefix rows come from there).
    """
    n = ref.n_tokens if ref is not None else encoded.n_tokens
    ids_all = ref.ids if ref is not None else encoded.ids
    t0 = time.perf_counter()
    live = [i for i, p in enumerate(prefixes) if p < n]  # the others keep every key: nothing to recompute
    parts = ([] if ref is not None else [(Budget("full"), 0)]) + [(chunk[i], prefixes[i]) for i in live]
    segments, start = [], 0
    for _, p in parts:
        segments.append(Segment(start=start, length=n - p, prefix=p))
        start += n - p
    hidden, run = None, None
    if parts:
        ids = torch.cat([ids_all[0, p:] for _, p in parts]).unsqueeze(0)
        positions = torch.cat([torch.arange(p, n) for _, p in parts]).unsqueeze(0)
        run = BudgetRun([b for b, _ in parts], causal=True, segments=segments,
                        prefix_kv=None if ref is None else ref.kv, capture=capture,
                        prefix_weights=None if ref is None else ref.weights,
                        prefix_queries=None if ref is None else ref.queries)
        hidden = run_trunk(lm.model, ids, run, position_ids=positions)[0][0]
    if ref is None:
        kv = [run.kv[layer] for layer in range(len(run.kv))]
        ref = Reference(lm=lm, encoded=encoded, next=_full_next(lm, hidden[:n], encoded.ids),
                        hidden=hidden[:n], stats=run.stats[0], seconds=0.0,
                        shape=model_shape(lm.model), dense_params=linear_params(lm.model), kv=kv,
                        queries=[run.queries[layer] for layer in range(len(run.queries))])
    first = len(parts) - len(live)  # the reference's segment, if any, comes first
    stats = [RowStats() for _ in chunk]
    pieces = [(None, p) for p in prefixes]
    weights, keeps = [{} for _ in chunk], [{} for _ in chunk]  # captured, per budget
    layers = _capture_layers(capture, ref.shape.layers)
    full_keep = torch.ones(n, n, dtype=torch.bool).tril().expand(ref.shape.q_heads, n, n)
    for i in set(range(len(chunk))) - set(live):  # nothing recomputed, every key kept: the full run's weights
        for layer in layers:
            weights[i][layer], keeps[i][layer] = ref.weights[layer], full_keep
    for j, i in enumerate(live):
        seg = segments[first + j]
        stats[i] = run.stats[first + j]
        pieces[i] = (hidden[seg.start:seg.start + seg.length], prefixes[i])
        for layer in layers:
            weights[i][layer], keeps[i][layer] = run.weights[layer][first + j], run.keep_masks[layer][first + j]
    qualities = _causal_qualities(lm, ref, pieces)
    seconds = (time.perf_counter() - t0) / (len(chunk) + first)
    if first:
        ref.seconds = seconds
    shape = ref.shape
    heads = shape.layers * shape.q_heads
    rows = []
    for i, (budget, p, stat, (quality, top1)) in enumerate(zip(chunk, prefixes, stats, qualities, strict=True)):
        stat.add_full_rows(pairs=heads * p * (p + 1) // 2, rows=heads * p)
        if p >= n:
            stat.kv_keys = ref.stats.kv_keys
        quality.update(mass_kept=stat.mass_kept, cos_embedding=None, cos_tokens=None)
        rows.append(Row(budget=budget, density=stat.kept_pairs / stat.allowed_pairs if stat.allowed_pairs else 1.0,
                        quality=quality, stats=stat, top1=top1,
                        compute=compute_costs(stat, ref.stats, shape, ref.dense_params, n, True, seconds),
                        weights=weights[i], keep=keeps[i]))
    return ref, rows


def _run_batch(lm, ref: Reference, chunk: list[Budget], capture: Capture, observers: Sequence) -> list[Row]:
    n = ref.n_tokens
    p = shared_prefix(lm, ref, chunk, capture, observers)
    run = BudgetRun(chunk, causal=lm.causal, capture=capture, observers=observers)
    if p >= n:  # nothing to recompute: every budget keeps every key
        hidden, seconds = None, 0.0
    else:
        b = len(chunk)
        past = make_cache(lm.model, [(k[:, :, :p].expand(b, -1, -1, -1), v[:, :, :p].expand(b, -1, -1, -1))
                                     for k, v in ref.kv]) if p else None
        hidden, _, seconds = run_trunk(lm.model, ref.ids[:, p:].expand(b, -1), run, past)
    shape = ref.shape
    rows = []
    if lm.causal:
        qualities = _causal_qualities(lm, ref, [(None if hidden is None else hidden[b], p) for b in range(len(chunk))])
    for b, budget in enumerate(chunk):
        t0 = time.perf_counter()
        stats = run.stats[b] if hidden is not None else RowStats()
        heads = shape.layers * shape.q_heads
        stats.add_full_rows(pairs=heads * p * (p + 1) // 2, rows=heads * p)
        if hidden is None:
            stats.kv_keys = ref.stats.kv_keys
        if lm.causal:
            quality, top1 = qualities[b]
            quality.update(mass_kept=stats.mass_kept, cos_embedding=None, cos_tokens=None)
        else:
            quality = {"kl": None, "top1": None, "ppl": None, "ppl_full": None, "mass_kept": stats.mass_kept,
                       **encoder_quality(ref.hidden, hidden[b])}
            top1 = None
        seconds_b = seconds / len(chunk) + time.perf_counter() - t0
        rows.append(Row(
            budget=budget,
            density=stats.kept_pairs / stats.allowed_pairs if stats.allowed_pairs else 1.0,
            quality=quality,
            compute=compute_costs(stats, ref.stats, shape, ref.dense_params, n, lm.causal, seconds_b),
            stats=stats, top1=top1,
            weights={layer: w[b] for layer, w in run.weights.items()},
            keep={layer: m[b] for layer, m in run.keep_masks.items()},
        ))
    return rows


def reference_and_budgets(lm, encoded: Encoded, budgets: Sequence[Budget],
                          progress: Callable[[int, int], None] | None = None,
                          batch_size: int | None = None) -> tuple[Reference, list[Row]]:
    """:func:`reference_pass` and :func:`budget_pass` in one go, for one-shot sweeps.

    On a causal model the full run shares the first packed pass with the
    budgets (its tokens go through the linear layers with theirs); the rows
    equal those of the two separate calls.
    """
    validate_budgets(budgets, lm.causal)
    if not lm.causal or not budgets:
        ref = reference_pass(lm, encoded)
        return ref, budget_pass(lm, ref, budgets, batch_size=batch_size, progress=progress)
    n = encoded.n_tokens
    prefixes = _exact_prefixes(budgets, n)
    first = _packed_groups(n, prefixes, reserved=n)[0]  # the full run's n tokens share the first pass
    ref, rows = _run_packed(lm, None, [budgets[i] for i in first], [prefixes[i] for i in first], encoded)
    if progress:
        progress(len(first), len(budgets))
    rest = budget_pass(lm, ref, budgets[len(first):],
                       progress=(lambda done, total: progress(len(first) + done, len(budgets))) if progress else None)
    return ref, rows + rest


def sweep(lm, text: str, budgets: Sequence[Budget], max_tokens: int = DEFAULT_MAX_TOKENS,
          batch_size: int | None = None, progress: Callable[[int, int], None] | None = None) -> dict:
    """Reference + budgets on ``text``; the JSON object of ``python -m attnviz sweep --json``."""
    validate_budgets(budgets, lm.causal)
    encoded = encode_for(lm, text, max_tokens)
    _, rows = reference_and_budgets(lm, encoded, budgets, progress=progress, batch_size=batch_size)
    return {
        "model": lm.name,
        "weights": lm.weights,
        "n_tokens": encoded.n_tokens,
        "truncated_from": encoded.truncated_from,
        "seconds_note": "seconds: measured wall time of a masked (simulated) sparse forward; masking saves no time",
        "flops_note": "FLOPs and kv_bytes are counted from formulas (see attnviz/compute.py), not measured",
        "rows": [r.to_json() for r in rows],
    }
