"""Budgeted passes: many budgets against one reference, packed into few forwards where the model allows.

On a causal model budgets run *packed* (:mod:`attnviz.engine.packed`): each recomputes only the tokens
after the prefix it leaves untouched; otherwise they run as batch rows.  :func:`sweep` is the one-shot
reference + budgets the command line prints.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, as_completed

import torch

from ..allocators import Setting
from ..allocators.demand import demand_of_reference
from ..budget import Budget
from ..engine.run import BudgetRun, RowStats, Segment
from ..engine.trunk import make_cache, run_trunk, trunk_and_head
from ..engine.workers import WORKERS, side_by_side
from ..text import DEFAULT_MAX_TOKENS, Encoded
from .compute import compute_costs, linear_params, model_shape
from .metrics import CausalSums, Quality, encoder_quality, next_token_terms
from .reference import Capture, Reference, encode_for, full_next_of, reference_pass
from .rows import Row

__all__ = ["budget_pass", "reference_and_budgets", "sweep", "validate_budgets", "plan_budgets",
           "default_batch_size", "shared_prefix"]


def validate_budgets(budgets: Iterable[Budget], causal: bool, layers: int | None = None) -> None:
    """Raise :class:`~attnviz.budget.BudgetError` (one line naming the policy and the reason) for the first
    budget unfit for a model with this masking (and, given ``layers``, this many layers): the one check every
    entry point makes before any work."""
    for b in budgets:
        if layers is not None:
            b.check_layers(layers)
        b.policy.validate(b, causal)
        b.allocator.validate(b, causal)


def plan_budgets(lm, ref: Reference, budgets: Sequence[Budget],
                 progress: Callable[[int, int], None] | None = None) -> list[Budget]:
    """Each budget as its allocator plans it for ``ref``'s text (:meth:`~attnviz.allocators.Allocator.plan`)."""
    if all(b.allocator.uniform for b in budgets):
        return list(budgets)
    n = ref.n_tokens
    row_keys = torch.arange(1, n + 1) if lm.causal else torch.full((n,), n)
    setting = Setting(layers=ref.shape.layers, q_heads=ref.shape.q_heads, kv_heads=ref.shape.kv_heads,
                      causal=lm.causal, row_keys=row_keys, ids=ref.ids, lm=lm, progress=progress,
                      demand=lambda floor=0: demand_of_reference(ref, floor))
    return [b.allocator.plan(b, setting) for b in budgets]


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
"""Texts up to this long run their packed passes side by side (:func:`attnviz.engine.workers.side_by_side`).

Faster on short texts (benchmarks/README.md). Each worker thread keeps its own high-water mark of memory, so
the peak grows with the text; longer texts run one pass at a time.
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
                observers: Sequence = (), pack: bool | None = None, first: int = 0) -> list[Row]:
    """Evaluate ``budgets`` against ``ref``; one :class:`Row` each, in the order given.

    Quality counts the predictions made at positions ``first .. n-2`` (default: all of them; a press's
    continuation starts at ``C-1``).

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
    one core each (:mod:`attnviz.engine.workers`); two to eight budgets are split
    into two passes for that, not packed into one.

    ``seconds`` is the measured wall time of the budgeted forward (trunk and
    output layer), divided evenly among the budgets that shared a pass: a
    *mask simulation* of sparse attention, no faster than full attention.
    ``progress(done, total)`` is called after each pass, from the calling thread.
    """
    validate_budgets(budgets, lm.causal, ref.shape.layers)  # fail fast, before any forward
    if lm.causal and ref.next is None:
        raise ValueError("this reference was made without what budgets are compared against (for_budgets=False)")
    requested, budgets = budgets, plan_budgets(lm, ref, budgets)
    for b in budgets:  # a plug-in allocator's plan is checked as a user's budget is
        b.check_layers(ref.shape.layers)
    can_pack = lm.causal and ref.kv is not None and not observers and _in_reference(capture, ref)
    if pack and not can_pack:
        raise ValueError("packed passes need a causal model's reference with its KV cache (and the weights of "
                         "every captured layer), and no observers")
    if pack is None:
        pack = can_pack
    prefix = _exact_prefixes(budgets, ref.n_tokens, ref.queries is not None) if pack else [0] * len(budgets)
    pool = side_by_side() if pack and ref.n_tokens <= SIDE_BY_SIDE_TOKENS else None
    if pack:
        most = _budgets_per_pass(capture, ref)
        if pool is not None:  # a few budgets still fill every worker: two passes on one core each beat one on two
            live = sum(p < ref.n_tokens for p in prefix)
            most = max(1, min(most, -(-live // WORKERS)))
        chunks = _packed_groups(ref.n_tokens, prefix, max_budgets=most)
    else:
        size = batch_size or default_batch_size(ref.n_tokens)
        chunks = [list(range(len(budgets)))[s:s + size] for s in range(0, len(budgets), size)]
    if len(chunks) < 2:
        pool = None
    rows: dict[int, Row] = {}
    done = 0

    def run(idx: list[int]) -> list[Row]:
        chunk = [budgets[i] for i in idx]
        if pack:
            return _run_packed(lm, ref, chunk, [prefix[i] for i in idx], capture=capture, first=first)[1]
        return _run_batch(lm, ref, chunk, capture, observers, first)

    for idx, got in _each_pass(run, chunks, pool, [ref.n_tokens - p for p in prefix]):
        rows.update(zip(idx, got, strict=True))
        done += len(idx)
        if progress:
            progress(done, len(budgets))
    for i, b in enumerate(requested):  # rows name the budget asked for, and what its allocator planned
        rows[i].plan = dict(budgets[i].plan or {})
        rows[i].budget = b
    return [rows[i] for i in range(len(budgets))]


def _each_pass(run: Callable[[list[int]], list[Row]], chunks: list[list[int]], pool: Executor | None,
               recomputed: list[int]) -> Iterable[tuple[list[int], list[Row]]]:
    """``(chunk, run(chunk))`` for every chunk, as the passes finish.

    With a ``pool`` (:func:`attnviz.engine.workers.side_by_side`) several passes run side by
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
    return [b.allocator.exact_prefix(b, n, b.policy.exact_prefix(b, n)) if b.policy.rowwise or resumable else 0
            for b in budgets]


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


def _causal_qualities(lm, ref: Reference, pieces: Sequence[tuple[torch.Tensor | None, int]], first: int = 0
                      ) -> list[tuple[CausalSums, torch.Tensor]]:
    """Quality sums and top-1 per position of budgeted runs whose first ``prefix`` tokens equal the full run.

    ``pieces``: one ``(hidden, prefix)`` per budget, ``hidden`` ``(n - prefix, d)``
    its last hidden states from token ``prefix`` on (None when nothing was
    recomputed).  Positions before ``prefix`` predict exactly as the full run.
    The output layer runs for every piece's positions together, in groups of
    :data:`ROW_GROUP` rows and chunks of the vocabulary (see
    :func:`~attnviz.measure.metrics.next_token_terms`).  The sums count the predictions made at positions
    ``first .. n-2`` (a press's continuation); top-1 covers every position.
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
        sums.add_identical(ref.next.target_logp[first:s])
        m = n - 1 - s
        if m:
            skip = max(0, first - s)  # recomputed positions before `first` are not counted
            sums.add_terms(kl[at + skip:at + m], top1[at + skip:at + m], ref.top1[s + skip:], nll[at + skip:at + m])
            out.append((sums, torch.cat([ref.top1[:s], top1[at:at + m]])))
        else:
            out.append((sums, ref.top1.clone()))
        at += m
    return out


def _run_packed(lm, ref: Reference | None, chunk: list[Budget], prefixes: list[int],
                encoded: Encoded | None = None, capture: Capture = None, first: int = 0
                ) -> tuple[Reference, list[Row]]:
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
        ref = Reference(lm=lm, encoded=encoded, next=full_next_of(lm, hidden[:n], encoded.ids),
                        hidden=hidden[:n], stats=run.stats[0], seconds=0.0,
                        shape=model_shape(lm.model), dense_params=linear_params(lm.model), kv=kv,
                        queries=[run.queries[layer] for layer in range(len(run.queries))])
    reference_first = len(parts) - len(live)  # the reference's segment, if any, comes first
    stats = [RowStats() for _ in chunk]
    pieces = [(None, p) for p in prefixes]
    weights, keeps = [{} for _ in chunk], [{} for _ in chunk]  # captured, per budget
    layers = _capture_layers(capture, ref.shape.layers)
    full_keep = torch.ones(n, n, dtype=torch.bool).tril().expand(ref.shape.q_heads, n, n)
    for i in set(range(len(chunk))) - set(live):  # nothing recomputed, every key kept: the full run's weights
        for layer in layers:
            weights[i][layer], keeps[i][layer] = ref.weights[layer], full_keep
    for j, i in enumerate(live):
        seg = segments[reference_first + j]
        stats[i] = run.stats[reference_first + j]
        pieces[i] = (hidden[seg.start:seg.start + seg.length], prefixes[i])
        for layer in layers:
            weights[i][layer], keeps[i][layer] = (run.weights[layer][reference_first + j],
                                                  run.keep_masks[layer][reference_first + j])
    qualities = _causal_qualities(lm, ref, pieces, first)
    seconds = (time.perf_counter() - t0) / (len(chunk) + reference_first)
    if reference_first:
        ref.seconds = seconds
    rows = [_make_row(ref, budget, stat, p, sums, top1, seconds, weights[i], keeps[i], first)
            for i, (budget, p, stat, (sums, top1)) in enumerate(zip(chunk, prefixes, stats, qualities, strict=True))]
    return ref, rows


def _run_batch(lm, ref: Reference, chunk: list[Budget], capture: Capture, observers: Sequence, first: int = 0
               ) -> list[Row]:
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
    if lm.causal:
        qualities = _causal_qualities(lm, ref, [(None if hidden is None else hidden[b], p) for b in range(len(chunk))],
                                      first)
    else:  # an encoder recomputes every token (no prefix is reused)
        qualities = [(hidden[b], None) for b in range(len(chunk))]
    return [_make_row(ref, budget, run.stats[b] if hidden is not None else RowStats(), p, *qualities[b],
                      seconds / len(chunk), {layer: w[b] for layer, w in run.weights.items()},
                      {layer: m[b] for layer, m in run.keep_masks.items()}, first) for b, budget in enumerate(chunk)]


def _make_row(ref: Reference, budget: Budget, stats: RowStats, prefix: int, quality: CausalSums | torch.Tensor,
              top1: torch.Tensor | None, seconds: float, weights: dict, keep: dict, first: int = 0) -> Row:
    """A budget's :class:`Row`, the one place rows are made.

    ``stats`` count the recomputed tokens; the first ``prefix`` tokens kept every key (counted here).
    ``quality``: a causal run's :class:`~attnviz.measure.metrics.CausalSums`, or an encoder's last hidden
    states ``(n, hidden)``.  ``seconds``: the pass's measured share.  ``first``: the first position whose
    prediction the quality counts (the full run's perplexity then counts the same positions).
    """
    n, shape = ref.n_tokens, ref.shape
    heads = shape.layers * shape.q_heads
    stats.add_full_rows(pairs=heads * prefix * (prefix + 1) // 2, rows=heads * prefix)
    if prefix >= n:  # nothing recomputed: the full run's cache
        stats.kv_keys = ref.stats.kv_keys
    if isinstance(quality, CausalSums):
        ppl_full = ref.ppl_full if not first else math.exp(-float(ref.next.target_logp[first:].mean()))
        measured: Quality = quality.result(ppl_full, stats.mass_kept)
    else:
        measured = encoder_quality(ref.hidden, quality, stats.mass_kept)
    causal = ref.lm.causal
    allocation = stats.allocation(shape.layers, shape.q_heads, full_pairs=prefix * (prefix + 1) // 2)
    if allocation is None and prefix >= n:
        allocation = torch.ones(shape.layers, shape.q_heads, dtype=torch.float64)
    return Row(budget=budget, density=stats.density, quality=measured, stats=stats, top1=top1,
               compute=compute_costs(stats, ref.stats, shape, ref.dense_params, n, causal, seconds),
               weights=weights, keep=keep, allocation=allocation)


def reference_and_budgets(lm, encoded: Encoded, budgets: Sequence[Budget],
                          progress: Callable[[int, int], None] | None = None,
                          batch_size: int | None = None) -> tuple[Reference, list[Row]]:
    """:func:`reference_pass` and :func:`budget_pass` in one go, for one-shot sweeps.

    On a causal model the full run shares the first packed pass with the
    budgets (its tokens go through the linear layers with theirs); the rows
    equal those of the two separate calls.
    """
    validate_budgets(budgets, lm.causal, model_shape(lm.model).layers)
    if not lm.causal or not budgets or not all(b.allocator.uniform for b in budgets):
        ref = reference_pass(lm, encoded)  # allocators plan on the reference before any budget runs
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
    validate_budgets(budgets, lm.causal, model_shape(lm.model).layers)
    encoded = encode_for(lm, text, max_tokens)
    _, rows = reference_and_budgets(lm, encoded, budgets, progress=progress, batch_size=batch_size)
    return {
        "model": lm.name,
        "weights": lm.weights,
        "n_tokens": encoded.n_tokens,
        "truncated_from": encoded.truncated_from,
        "seconds_note": "seconds: measured wall time of a masked (simulated) sparse forward; masking saves no time",
        "flops_note": "FLOPs and kv_bytes are counted from formulas (see attnviz/measure/compute.py), not measured",
        "rows": [r.to_json() for r in rows],
    }
