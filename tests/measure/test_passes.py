"""Tests for :mod:`attnviz.measure` on the bundled models (short texts, for speed).

Expected values come from transformers' own eager attention, from counting
kept pairs by hand, or from an independent re-computation of the statistic.
"""

from __future__ import annotations

import math
import threading

import pytest
import torch

import attnviz.measure.passes as measure
import attnviz.measure.reference as reference
from attnviz.budget import Budget, BudgetError
from attnviz.engine import workers
from attnviz.engine.run import BudgetRun
from attnviz.engine.trunk import trunk_and_head
from attnviz.measure import budget_pass, encode_for, reference_pass, sweep

TEXT = ("The lighthouse keeper climbed the spiral stairs every evening at dusk. He trimmed the wick, polished the "
        "great lens, and watched the beam sweep across the dark water, warning ships away from the rocks below. "
        "Nobody thanked him.")

L, H, HKV, D = 30, 9, 3, 64  # SmolLM2-135M
KV_PER_KEY = HKV * L * 2 * D * 4  # bytes of one cached position: K and V, every layer and KV head, float32
LINEAR = 134_479_872  # hand count, see test_compute.py

BUDGETS = [
    Budget("full"),
    Budget("topk", keys=16),
    Budget("window", keys=8),
    Budget.of("sink_window", keys=12, sinks=4),
    Budget.of("random", keys=10, seed=3),
    Budget("h2o", keys=12),
    Budget("topp", ratio=0.9),
    Budget("topk", ratio=0.3),
]


def _pairs(n: int, per_row) -> int:
    """Kept pairs summed over layers and query heads, for a per-row count ``per_row(i)`` of a causal text."""
    return L * H * sum(per_row(i) for i in range(n))


def _eager_ppl(logits: torch.Tensor, ids: torch.Tensor) -> float:
    logp = torch.log_softmax(logits[0, :-1].double(), dim=-1)
    nll = -logp.gather(-1, ids[0, 1:].view(-1, 1)).mean()
    return math.exp(float(nll))


@pytest.fixture(scope="module")
def enc(smollm2):
    e = encode_for(smollm2, TEXT)
    assert 40 <= e.n_tokens <= 150
    return e


@pytest.fixture(scope="module")
def ref(smollm2, enc):
    return reference_pass(smollm2, enc)


@pytest.fixture(scope="module")
def batched(smollm2, ref):
    """Every budget in one packed pass (the default on a causal model)."""
    return budget_pass(smollm2, ref, BUDGETS)


@pytest.fixture(scope="module")
def alone(smollm2, ref):
    """Each budget on its own, as a plain batch row (no packing)."""
    return [budget_pass(smollm2, ref, [b], batch_size=1, pack=False)[0] for b in BUDGETS]


@pytest.fixture(scope="module")
def eager_logits(smollm2_eager, enc):
    with torch.inference_mode():
        return smollm2_eager.model(enc.ids).logits


def _row(rows, budget):
    return rows[BUDGETS.index(budget)]


# --------------------------------------------------------------------------- our kernel equals eager attention


def test_smollm2_logits_through_kernel_equal_eager(smollm2, enc, eager_logits):
    with torch.inference_mode():
        budgeted = smollm2.model(enc.ids, attnviz=BudgetRun([Budget("full")])).logits
        plain = smollm2.model(enc.ids).logits
    assert budgeted.shape == eager_logits.shape
    assert (budgeted - eager_logits).abs().max().item() < 1e-4
    assert (plain - eager_logits).abs().max().item() < 1e-4


def test_minilm_hidden_states_through_kernel_equal_eager(minilm, minilm_eager):
    ids = encode_for(minilm, TEXT).ids
    with torch.inference_mode():
        expected = minilm_eager.model(ids).last_hidden_state
        budgeted = minilm.model(ids, attnviz=BudgetRun([Budget("full")], causal=False)).last_hidden_state
        plain = minilm.model(ids).last_hidden_state
    assert (budgeted - expected).abs().max().item() < 1e-4
    assert (plain - expected).abs().max().item() < 1e-4


# --------------------------------------------------------------------------- the full policy


def test_full_policy_is_exact(batched):
    row = _row(batched, Budget("full"))
    q = row.quality
    assert q.kl < 1e-9
    assert q.top1 == 1.0
    assert q.ppl == pytest.approx(q.ppl_full, rel=1e-12)
    assert q.mass_kept == pytest.approx(1.0, abs=1e-6)
    assert q.cos_embedding is None and q.cos_tokens is None
    assert row.density == 1.0


def test_full_policy_recomputed_is_exact(smollm2, ref):
    """With capture the full row is recomputed (no reuse), and still equals the reference."""
    row = budget_pass(smollm2, ref, [Budget("full")], capture=[0])[0]
    assert row.quality.kl < 1e-9
    assert row.quality.top1 == 1.0
    assert row.quality.ppl == pytest.approx(row.quality.ppl_full, rel=1e-6)
    assert row.quality.mass_kept == pytest.approx(1.0, abs=1e-6)
    assert row.density == 1.0
    assert row.compute.attn_flops == row.compute.attn_flops_full


def test_ppl_full_equals_eager_perplexity(batched, enc, eager_logits):
    expected = _eager_ppl(eager_logits, enc.ids)
    for row in batched:
        assert row.quality.ppl_full == pytest.approx(expected, rel=1e-4)


def test_reference_next_token_facts_match_eager(ref, enc, eager_logits):
    eager_logp = torch.log_softmax(eager_logits[0, :-1].double(), dim=-1)
    targets = enc.ids[0, 1:]
    assert torch.equal(ref.top1, eager_logp.argmax(-1))
    assert (ref.next.target_logp - eager_logp.gather(-1, targets.view(-1, 1)).view(-1)).abs().max().item() < 1e-4
    p = eager_logp.exp()
    assert (ref.full_terms.lse - eager_logits[0, :-1].double().logsumexp(-1)).abs().max().item() < 1e-4
    assert (ref.full_terms.p_sum - 1).abs().max().item() < 1e-5
    _, head = trunk_and_head(ref.lm.model)
    assert (ref.full_terms.p_head - p @ head.weight.double()).abs().max().item() < 1e-4


def test_the_reference_keeps_no_vocabulary_sized_tensor(ref):
    """Budgets need a few numbers per position from the full run's next-token distributions, not the
    ``(n-1, vocab)`` log-probabilities themselves (100 MB at 512 tokens, 200 MB at 1024, for as long as the
    reference is cached)."""
    vocab = trunk_and_head(ref.lm.model)[1].weight.shape[0]
    tensors = [t for v in vars(ref).values() for t in _tensors(v)]
    assert tensors and all(vocab not in t.shape for t in tensors), [t.shape for t in tensors if vocab in t.shape]
    assert sum(t.numel() * t.element_size() for t in tensors) < 20e6  # the KV cache and queries: a few MB here


def _tensors(value) -> list:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    if hasattr(value, "__dataclass_fields__"):
        return [t for v in vars(value).values() for t in _tensors(v)]
    return []


# --------------------------------------------------------------------------- batched == alone (and prefix reuse)


def test_rows_come_back_in_the_order_given(batched, alone):
    assert [r.budget for r in batched] == BUDGETS
    assert [r.budget for r in alone] == BUDGETS


@pytest.mark.parametrize("i", range(len(BUDGETS)), ids=[b.label for b in BUDGETS])
def test_batched_equals_alone(batched, alone, i):
    a, b = alone[i], batched[i]
    assert a.density == b.density
    assert a.compute.attn_pairs == b.compute.attn_pairs
    assert a.compute.attn_pairs_full == b.compute.attn_pairs_full
    assert a.compute.attn_flops == b.compute.attn_flops
    assert a.compute.kv_bytes == b.compute.kv_bytes
    assert a.quality.kl == pytest.approx(b.quality.kl, abs=1e-4)
    assert a.quality.ppl == pytest.approx(b.quality.ppl, rel=1e-4)
    # a near-tie argmax may flip at one position at most
    assert abs(a.quality.top1 - b.quality.top1) <= 1 / len(a.top1) + 1e-12
    assert a.quality.mass_kept == pytest.approx(b.quality.mass_kept, abs=1e-4)


def test_packed_passes_split_by_size_and_report_progress(smollm2, ref, batched, monkeypatch):
    """A small token cap splits the budgets over several packed passes; each row stays the same."""
    monkeypatch.setattr(measure, "PACKED_TOKENS", ref.n_tokens)
    calls = []
    rows = budget_pass(smollm2, ref, BUDGETS, progress=lambda done, total: calls.append((done, total)))
    assert len(calls) > 2 and calls[-1] == (len(BUDGETS), len(BUDGETS))
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    for a, b in zip(rows, batched, strict=True):
        assert a.compute.attn_pairs == b.compute.attn_pairs
        assert a.quality.kl == pytest.approx(b.quality.kl, abs=1e-5)
        assert torch.equal(a.top1, b.top1)


def test_side_by_side_passes_equal_one_after_another(smollm2, ref, two_cores, monkeypatch):
    """Passes on the worker threads (one core each) give the rows that sequential passes give."""
    monkeypatch.setattr(measure, "PACKED_TOKENS", ref.n_tokens)  # one pass per budget
    pools = []
    monkeypatch.setattr(measure, "side_by_side", lambda: pools.append(workers.side_by_side()) or pools[-1])
    side = budget_pass(smollm2, ref, BUDGETS)
    assert pools and pools[0] is not None
    monkeypatch.setattr(measure, "side_by_side", lambda: None)
    seq = budget_pass(smollm2, ref, BUDGETS)
    for a, b in zip(side, seq, strict=True):
        assert a.budget == b.budget
        assert a.compute.attn_pairs == b.compute.attn_pairs and a.compute.kv_bytes == b.compute.kv_bytes
        assert a.quality.kl == pytest.approx(b.quality.kl, abs=1e-6)
        assert a.quality.ppl == pytest.approx(b.quality.ppl, rel=1e-6)
        assert a.quality.mass_kept == pytest.approx(b.quality.mass_kept, abs=1e-6)
        assert int((a.top1 != b.top1).sum()) <= 1  # a near-tie argmax may flip
    pools.clear()
    monkeypatch.setattr(measure, "side_by_side", lambda: pools.append(workers.side_by_side()) or pools[-1])
    monkeypatch.setattr(measure, "SIDE_BY_SIDE_TOKENS", ref.n_tokens - 1)  # a longer text: one pass at a time
    budget_pass(smollm2, ref, BUDGETS[:3])
    assert pools == []


def test_stopping_a_sweep_drops_the_passes_not_begun(smollm2, ref, two_cores, monkeypatch):
    """An error in the progress callback (a Streamlit rerun stops a script this way) ends the sweep early."""
    monkeypatch.setattr(measure, "PACKED_TOKENS", ref.n_tokens)
    started, run_packed = [], measure._run_packed
    monkeypatch.setattr(measure, "_run_packed", lambda *a, **k: started.append(1) or run_packed(*a, **k))
    budgets = [Budget("topk", keys=k) for k in range(2, 14)]

    def stop(done, total):
        raise KeyboardInterrupt  # not an Exception: nothing may swallow it

    with pytest.raises(KeyboardInterrupt):
        budget_pass(smollm2, ref, budgets, progress=stop)
    idle = threading.Barrier(workers.WORKERS)
    for f in [workers.side_by_side().submit(idle.wait, 30) for _ in range(workers.WORKERS)]:
        f.result(timeout=120)  # every worker is free again: nothing else will start
    assert 1 <= len(started) <= 1 + 2 * workers.WORKERS < len(budgets)
    assert len(budget_pass(smollm2, ref, budgets[:3])) == 3  # the pool still works


def test_unbatched_rows_through_the_batch_path(smollm2, ref, batched):
    """pack=False with several rows per batch (the encoder and capture path) gives the same rows."""
    rows = budget_pass(smollm2, ref, BUDGETS, batch_size=3, pack=False)
    for a, b in zip(rows, batched, strict=True):
        assert a.compute.attn_pairs == b.compute.attn_pairs
        assert a.quality.kl == pytest.approx(b.quality.kl, abs=1e-4)


@pytest.mark.parametrize("cap", [None, 3])
def test_reference_and_budgets_in_one_pass_equal_separate_calls(smollm2, enc, ref, batched, monkeypatch, cap):
    """The one-shot path (full run packed with the budgets, also when they spill into more passes)."""
    if cap:
        monkeypatch.setattr(measure, "PACKED_TOKENS", cap * enc.n_tokens)
    calls = []
    fused_ref, rows = measure.reference_and_budgets(smollm2, enc, BUDGETS,
                                                    progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (len(BUDGETS), len(BUDGETS))
    assert torch.equal(fused_ref.top1, ref.top1)
    assert (fused_ref.next.target_logp - ref.next.target_logp).abs().max().item() < 1e-4
    assert fused_ref.stats == ref.stats
    for (k1, v1), (k2, v2) in zip(fused_ref.kv, ref.kv, strict=True):
        assert k1.shape == k2.shape and torch.allclose(k1, k2, atol=1e-4) and torch.allclose(v1, v2, atol=1e-4)
    for a, b in zip(rows, batched, strict=True):
        assert a.budget == b.budget
        assert a.compute.attn_pairs == b.compute.attn_pairs and a.compute.kv_bytes == b.compute.kv_bytes
        assert a.quality.kl == pytest.approx(b.quality.kl, abs=1e-4)
        assert a.quality.ppl == pytest.approx(b.quality.ppl, rel=1e-4)


def test_packing_needs_a_cache_and_no_capture(smollm2, ref):
    with pytest.raises(ValueError, match="packed"):
        budget_pass(smollm2, ref, [Budget("topk", keys=4)], capture=[0], pack=True)


def test_capture_packed_equals_capture_recomputed(smollm2, enc, monkeypatch):
    """With the captured layers' weights in the reference, a captured budget runs packed (its prefix rows
    copied from the reference) and equals the same budget recomputed whole: weights, masks, numbers."""
    n = enc.n_tokens
    ref_w = reference_pass(smollm2, enc, capture=[0, 5])
    budgets = [*BUDGETS[1:], Budget("topk", keys=n)]  # the last keeps every key: nothing to recompute
    calls = []
    run_packed = measure._run_packed
    monkeypatch.setattr(measure, "_run_packed", lambda *a, **k: calls.append(len(a[2])) or run_packed(*a, **k))
    packed = budget_pass(smollm2, ref_w, budgets, capture=[5])
    whole = budget_pass(smollm2, ref_w, budgets, capture=[5], pack=False)
    # all 8 budgets packed: in one pass, or in one pass per worker where passes run side by side
    assert sorted(calls) == ([4, 4] if workers.side_by_side() else [8])
    for a, b in zip(packed, whole, strict=True):
        assert set(a.weights) == set(a.keep) == {5}
        assert a.weights[5].shape == (H, n, n) and a.weights[5].dtype == torch.float16
        assert torch.equal(a.keep[5], b.keep[5]), a.budget.label
        assert (a.weights[5].float() - b.weights[5].float()).abs().max().item() < 2e-3, a.budget.label
        assert a.compute.attn_pairs == b.compute.attn_pairs and a.compute.kv_bytes == b.compute.kv_bytes
        assert a.quality.kl == pytest.approx(b.quality.kl, abs=1e-4)
        assert a.quality.mass_kept == pytest.approx(b.quality.mass_kept, abs=1e-4)
    with pytest.raises(ValueError, match="packed"):  # layer 3 is not in the reference
        budget_pass(smollm2, ref_w, budgets[:1], capture=[3], pack=True)
    # large captures make smaller passes: at most CAPTURE_BYTES of weights and masks each
    monkeypatch.setattr(measure, "CAPTURE_BYTES", 2 * (2 * H * n * n * 3))
    calls.clear()
    again = budget_pass(smollm2, ref_w, budgets[:5], capture=[0, 5])
    assert sorted(calls) == [1, 2, 2]
    assert all(torch.equal(a.keep[5], b.keep[5]) for a, b in zip(again, packed, strict=False))


def test_budgets_actually_differ_from_full(batched):
    """Sanity of the comparison above: the budgets under test are not all trivially equal to full."""
    for b in BUDGETS[1:]:
        q = _row(batched, b).quality
        assert q.kl > 1e-4, b.label
        assert q.mass_kept < 1.0, b.label


def test_capture_disables_prefix_reuse_with_same_quality(smollm2, ref, alone, enc):
    """topk K=16 alone reuses the full run's KV cache for 16 tokens; capture=[0] recomputes everything."""
    b = Budget("topk", keys=16)
    assert measure.shared_prefix(smollm2, ref, [b]) == 16
    assert measure.shared_prefix(smollm2, ref, [b], capture=[0]) == 0
    row = budget_pass(smollm2, ref, [b], capture=[0])[0]
    reused = _row(alone, b)
    assert row.quality.kl == pytest.approx(reused.quality.kl, abs=1e-4)
    assert row.quality.ppl == pytest.approx(reused.quality.ppl, rel=1e-4)
    assert row.quality.mass_kept == pytest.approx(reused.quality.mass_kept, abs=1e-4)
    assert row.compute.attn_pairs == reused.compute.attn_pairs

    n = enc.n_tokens
    assert set(row.weights) == {0} and set(row.keep) == {0}
    w, keep = row.weights[0], row.keep[0]
    assert w.shape == (H, n, n) and w.dtype == torch.float16
    assert keep.shape == (H, n, n) and keep.dtype == torch.bool
    assert torch.allclose(w.float().sum(-1), torch.ones(H, n), atol=5e-3)
    assert (w[~keep] == 0).all()
    counts = keep.sum(-1)
    expected = torch.tensor([min(16, i + 1) for i in range(n)]).expand(H, n)
    assert torch.equal(counts, expected)
    assert not keep.triu(1).any()  # causal: never a later key


# --------------------------------------------------------------------------- density, pairs, FLOPs and KV by hand


def test_window_pairs_and_density_by_hand(batched, enc):
    n = enc.n_tokens
    row = _row(batched, Budget("window", keys=8))
    full = _pairs(n, lambda i: i + 1)
    kept = _pairs(n, lambda i: min(8, i + 1))
    assert row.compute.attn_pairs_full == full == L * H * n * (n + 1) // 2
    assert row.compute.attn_pairs == kept
    assert row.density == pytest.approx(kept / full, rel=1e-12)
    assert row.compute.attn_flops == 4 * D * kept  # scores only what it keeps
    assert row.compute.attn_flops_full == 4 * D * full
    assert row.compute.total_flops == 2 * LINEAR * n + 4 * D * kept
    assert row.compute.total_flops_full == 2 * LINEAR * n + 4 * D * full
    assert row.compute.kv_bytes == 8 * KV_PER_KEY
    assert row.compute.kv_bytes_full == n * KV_PER_KEY


@pytest.mark.parametrize("budget,per_row", [
    (Budget.of("sink_window", keys=12, sinks=4), lambda i: min(12, i + 1)),
    (Budget.of("random", keys=10, seed=3), lambda i: min(10, i + 1)),
    (Budget("topk", keys=16), lambda i: min(16, i + 1)),
    (Budget("topk", ratio=0.3), lambda i: max(1, math.ceil(0.3 * (i + 1) - 1e-9))),
    (Budget("h2o", keys=12), lambda i: min(12, i + 1)),  # a fixed cache of 12 keys
], ids=lambda x: x.label if isinstance(x, Budget) else "")
def test_kept_pairs_by_hand(batched, enc, budget, per_row):
    n = enc.n_tokens
    row = _row(batched, budget)
    kept = _pairs(n, per_row)
    full = _pairs(n, lambda i: i + 1)
    assert row.compute.attn_pairs == kept
    assert row.density == pytest.approx(kept / full, rel=1e-12)
    oracle = budget.name == "topk"
    scored = full if oracle else kept
    assert row.compute.attn_flops == 2 * D * scored + 2 * D * kept


def test_topp_is_an_oracle(batched, enc):
    n = enc.n_tokens
    row = _row(batched, Budget("topp", ratio=0.9))
    full = _pairs(n, lambda i: i + 1)
    assert 0 < row.compute.attn_pairs < full
    assert row.compute.attn_flops == 2 * D * full + 2 * D * row.compute.attn_pairs
    assert row.quality.mass_kept >= 0.9 - 1e-6  # every row keeps at least mass p of its own softmax


def test_kv_bytes_per_policy(batched, enc):
    n = enc.n_tokens
    full_kv = n * KV_PER_KEY
    assert n * 3 * 30 * 2 * 64 * 4 == full_kv
    for row in batched:
        assert row.compute.kv_bytes_full == full_kv
    assert _row(batched, Budget("full")).compute.kv_bytes == full_kv
    for b in (Budget("topk", keys=16), Budget("topk", ratio=0.3), Budget("topp", ratio=0.9),
              Budget.of("random", keys=10, seed=3)):
        assert _row(batched, b).compute.kv_bytes == full_kv, b.label  # the whole cache is needed
    h2o = _row(batched, Budget("h2o", keys=12)).compute.kv_bytes
    assert h2o < full_kv
    assert h2o == 12 * KV_PER_KEY
    assert _row(batched, Budget.of("sink_window", keys=12, sinks=4)).compute.kv_bytes == 12 * KV_PER_KEY


def test_seconds_positive_for_budget_rows(batched, alone):
    for rows in (batched, alone):
        for row in rows[1:]:
            assert row.compute.seconds > 0, row.budget.label


@pytest.mark.parametrize("pack", [True, False], ids=["packed", "batch rows"])
def test_a_budgets_time_leaves_out_the_references_one_time_work(smollm2, enc, monkeypatch, pack):
    """What every budget compares against (the full run's top-1, perplexity, KL terms) is made once per text, with
    the reference: the first budget's measured time must not include it.  A fake clock advances 100 s only while
    it is made."""
    clock = [0.0]
    monkeypatch.setattr(measure.time, "perf_counter", lambda: clock[0])
    made = reference.full_next

    def slow_full_next(*args, **kwargs):
        clock[0] += 100.0
        return made(*args, **kwargs)

    monkeypatch.setattr(reference, "full_next", slow_full_next)
    fresh = reference_pass(smollm2, enc)
    assert clock[0] >= 100.0  # the terms were made with the reference ...
    row = budget_pass(smollm2, fresh, [Budget("topk", keys=8)], pack=pack)[0]
    assert clock[0] < 200.0  # ... once
    assert row.compute.seconds < 100.0  # ... and not on the budget's clock


def test_budget_covering_the_whole_text_is_exact(smollm2, ref, enc):
    """K >= n keeps every key; K = n - 1 changes only the last query, which predicts nothing."""
    n = enc.n_tokens
    whole, last = budget_pass(smollm2, ref, [Budget("window", keys=n + 5), Budget("window", keys=n - 1)],
                              batch_size=1)
    full_pairs = _pairs(n, lambda i: i + 1)
    assert whole.density == 1.0 and whole.quality.kl == 0.0 and whole.quality.top1 == 1.0
    assert whole.quality.ppl == pytest.approx(whole.quality.ppl_full, rel=1e-12)
    assert whole.compute.kv_bytes == n * KV_PER_KEY
    assert whole.quality.mass_kept == pytest.approx(1.0, abs=1e-9)
    assert last.quality.kl == 0.0 and last.quality.top1 == 1.0
    assert last.compute.attn_pairs == full_pairs - L * H
    assert last.compute.kv_bytes == (n - 1) * KV_PER_KEY
    assert last.quality.mass_kept < 1.0


def test_reference_capture(smollm2, enc, ref):
    n = enc.n_tokens
    captured = reference_pass(smollm2, enc, capture=[0, L - 1])
    assert set(captured.weights) == {0, L - 1}
    for w in captured.weights.values():
        assert w.shape == (H, n, n) and w.dtype == torch.float16
        assert torch.allclose(w.float().sum(-1), torch.ones(H, n), atol=5e-3)
        assert (w.float().triu(1) == 0).all()  # causal
    assert torch.equal(captured.top1, ref.top1)
    assert (captured.next.target_logp - ref.next.target_logp).abs().max().item() < 1e-5


# --------------------------------------------------------------------------- mass kept, recomputed independently


def test_mass_kept_and_capture_recomputed_independently(smollm2, ref, enc, alone, monkeypatch):
    """mass_kept = mean over layers, heads and queries of the kept share of the layer's own softmax.

    The share is recomputed here from the budgeted run's own queries and keys
    (float64, keys repeated per query group), with keep masks built by hand.
    """
    n = enc.n_tokens
    i = torch.arange(n).view(-1, 1)
    j = torch.arange(n).view(1, -1)
    window = (j <= i) & (j > i - 8)
    sinks = (j <= i) & ((j > i - 8) | (j < 4))  # K=12: 4 sinks + 8 recent (rows 0..11 keep everything)
    budgets = [Budget("window", keys=8), Budget.of("sink_window", keys=12, sinks=4)]
    hand = {budgets[0]: window, budgets[1]: sinks}
    per_layer: list[dict[Budget, float]] = []

    class Recording(BudgetRun):
        def attend(self, layer, query, key, value, allowed, scaling):
            out = super().attend(layer, query, key, value, allowed, scaling)
            group = query.shape[1] // key.shape[1]
            k = key.double().repeat_interleave(group, dim=1)
            s = scaling * query.double() @ k.transpose(-1, -2)
            causal = j <= i
            p = torch.softmax(s.masked_fill(~causal, float("-inf")), dim=-1)
            # the batch may run the budgets in another order than given: look each row's budget up
            masks = torch.stack([hand[b] for b in self.budgets]).unsqueeze(1)  # (rows, 1, n, n)
            mass = (p * masks).sum(-1).mean(dim=(1, 2))  # (rows,)
            per_layer.append({b: float(m) for b, m in zip(self.budgets, mass, strict=True)})
            return out

    monkeypatch.setattr(measure, "BudgetRun", Recording)
    rows = budget_pass(smollm2, ref, budgets, capture="all", batch_size=2)
    assert len(per_layer) == L
    for r, row in enumerate(rows):
        assert row.budget == budgets[r]
        expected = sum(layer[budgets[r]] for layer in per_layer) / L
        assert row.quality.mass_kept == pytest.approx(expected, abs=1e-5)
        assert set(row.keep) == set(range(L))
        for layer in (0, L - 1):
            assert torch.equal(row.keep[layer], hand[budgets[r]].expand(H, n, n))
            w = row.weights[layer]
            assert w.shape == (H, n, n) and w.dtype == torch.float16
            assert (w[~row.keep[layer]] == 0).all()
            assert torch.allclose(w.float().sum(-1), torch.ones(H, n), atol=5e-3)
        # capture recomputes the prefix; the result equals the row that reused it
        reused = _row(alone, budgets[r])
        assert row.quality.kl == pytest.approx(reused.quality.kl, abs=1e-4)
        assert row.quality.ppl == pytest.approx(reused.quality.ppl, rel=1e-4)
        assert row.quality.mass_kept == pytest.approx(reused.quality.mass_kept, abs=1e-4)


# --------------------------------------------------------------------------- encoders, errors, truncation


def test_encoder_sweep(minilm):
    result = sweep(minilm, TEXT, [Budget("full"), Budget("window", keys=8)])
    n = result["n_tokens"]
    full, win = result["rows"]
    for row in (full, win):
        q = row["quality"]
        assert q["kl"] is None and q["top1"] is None and q["ppl"] is None and q["ppl_full"] is None
        assert row["compute"]["kv_bytes"] is None and row["compute"]["kv_bytes_full"] is None
    assert full["quality"]["cos_embedding"] > 0.9999
    assert full["quality"]["cos_tokens"] > 0.9999
    assert full["quality"]["mass_kept"] == pytest.approx(1.0, abs=1e-6)
    assert win["quality"]["cos_tokens"] < 0.9999
    # bidirectional: every query may see all n keys; the window keeps its 8 nearest
    assert win["compute"]["attn_pairs_full"] == 6 * 12 * n * n
    assert win["compute"]["attn_pairs"] == 6 * 12 * n * 8
    assert win["density"] == pytest.approx(8 / n, rel=1e-12)


def test_h2o_on_encoder_raises(minilm):
    with pytest.raises(BudgetError, match="h2o"):
        sweep(minilm, TEXT, [Budget("h2o", keys=8)])
    ref = reference_pass(minilm, encode_for(minilm, "a short sentence"))
    with pytest.raises(BudgetError, match="h2o"):
        budget_pass(minilm, ref, [Budget("window", keys=2), Budget("h2o", keys=2)])


def test_truncation(smollm2):
    n_text = len(smollm2.tokenizer(TEXT)["input_ids"])
    result = sweep(smollm2, TEXT, [Budget("window", keys=4)], max_tokens=20)
    assert result["truncated_from"] == n_text
    assert result["n_tokens"] == 20
    row = result["rows"][0]
    assert row["compute"]["attn_pairs_full"] == L * H * 20 * 21 // 2
    assert row["compute"]["kv_bytes"] == 4 * KV_PER_KEY
    assert row["compute"]["kv_bytes_full"] == 20 * KV_PER_KEY
    assert row["quality"]["cos_embedding"] is None and row["quality"]["cos_tokens"] is None


def test_sweep_json_shape(smollm2):
    result = sweep(smollm2, TEXT[:80], [Budget("topk", keys=4), Budget("topk", ratio=0.5)])
    assert result["model"] == "smollm2"
    assert result["truncated_from"] is None
    assert [(r["policy"], r["keys"], r["budget"]) for r in result["rows"]] == [("topk", 4, None),
                                                                                 ("topk", None, 0.5)]
    for row in result["rows"]:
        assert set(row["quality"]) >= {"kl", "top1", "ppl", "ppl_full", "mass_kept"}
        assert set(row["compute"]) >= {"attn_pairs", "attn_pairs_full", "attn_flops", "attn_flops_full",
                                       "total_flops", "total_flops_full", "kv_bytes", "kv_bytes_full", "seconds"}


def test_attention_weights_equal_the_reference_pass_and_stop_early(smollm2):
    from attnviz.measure import attention_weights, encode_for, reference_pass

    enc = encode_for(smollm2, "The cat sat on the mat because it was tired.")
    light = attention_weights(smollm2, enc, [0, 2])
    full = reference_pass(smollm2, enc, capture=[0, 2]).weights
    assert sorted(light) == [0, 2]
    for layer in (0, 2):
        assert torch.equal(light[layer], full[layer])


def test_reference_for_pictures_only_keeps_no_logprobs(smollm2, enc):
    pictures = reference_pass(smollm2, enc, capture=[0], for_budgets=False)
    assert pictures.next is None and pictures.kv is None and set(pictures.weights) == {0}
    with pytest.raises(ValueError, match="for_budgets"):
        budget_pass(smollm2, pictures, [Budget("topk", keys=4)])


@pytest.mark.parametrize("allocator", ["pyramid", "heads", "price", "duo"])
def test_full_with_an_allocator_is_the_reference(smollm2, allocator):
    """Found by tests/fuzz: ``Budget("full", keys=1, allocator="duo")`` raised AttributeError (no sinks), and
    heads/price/pyramid without keys a TypeError; the reference keeps every key whatever its allocator."""
    rows = sweep(smollm2, TEXT, [Budget("full", allocator=allocator), Budget("full", keys=1, allocator=allocator)],
                 max_tokens=12)["rows"]
    for row in rows:
        assert row["density"] == 1.0 and row["quality"]["kl"] == 0.0 and row["allocator"] == "uniform"


@pytest.mark.parametrize("keys", [(4, 2, 3), (4,) * 10])
def test_per_head_counts_for_other_heads_are_a_budget_error(smollm2, minilm, keys):
    """Found by tests/fuzz: per-head key counts whose number is not the model's query heads (9 in SmolLM2,
    12 in MiniLM) ended in a RuntimeError from a tensor shape; now a one-line BudgetError."""
    for lm in (smollm2, minilm):
        with pytest.raises(BudgetError, match="one count per query head"):
            sweep(lm, TEXT, [Budget("window", keys=keys)], max_tokens=12)


@pytest.mark.parametrize("layers", [3, 31])
def test_layer_keys_not_one_per_layer_are_refused_before_any_forward(smollm2, layers):
    from attnviz.generate import generate

    with pytest.raises(BudgetError, match=f"one count per layer: got {layers}, the model has 30"):
        sweep(smollm2, "The lighthouse keeper climbed the stairs.", [Budget("topk", layer_keys=(4,) * layers)])
    with pytest.raises(BudgetError, match="one count per layer"):
        generate(smollm2, "The lighthouse keeper", Budget("window", layer_keys=(4,) * layers), 2)
