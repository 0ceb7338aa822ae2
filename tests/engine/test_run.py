"""Tests for :class:`attnviz.engine.run.BudgetRun`, driven directly with random q/k/v.

Expected statistics are counted by hand or with small plain-Python references.
"""

from __future__ import annotations

import math

import pytest
import torch

from attnviz.budget import Budget
from attnviz.engine.hf_attention import attnviz_attention
from attnviz.engine.kernel import attend
from attnviz.engine.run import BudgetRun
from attnviz.policies.h2o import H2O


def _qkv(b, hq, hkv, n, d=8, seed=0, lk=None):
    gen = torch.Generator().manual_seed(seed)
    lk = n if lk is None else lk
    return (torch.randn(b, hq, n, d, generator=gen), torch.randn(b, hkv, lk, d, generator=gen),
            torch.randn(b, hkv, lk, d, generator=gen))


def _causal(b, n, pad=0):
    """Model mask ``(b, 1, n, n)``; ``pad`` (int or per-row list) padding tokens on the left."""
    pads = pad if isinstance(pad, list) else [pad] * b
    m = torch.ones(b, 1, n, n, dtype=torch.bool).tril()
    for r, p in enumerate(pads):
        m[r, ..., :p] = False
    return m


def _ref_topk_mass(q, k, allowed, scaling, keys):
    """Mean over (head, row with a key) of the pre-mask softmax share held by the top-``keys`` keys."""
    hq, hkv = q.shape[1], k.shape[1]
    g = hq // hkv
    total, rows = 0.0, 0
    for h in range(hq):
        for i in range(q.shape[2]):
            js = [j for j in range(k.shape[2]) if allowed[0, 0, i, j]]
            if not js:
                continue
            s = {j: scaling * float(q[0, h, i] @ k[0, h // g, j]) for j in js}
            z = sum(math.exp(x) for x in s.values())
            top = sorted(js, key=lambda j: -s[j])[: min(keys, len(js))]
            total += sum(math.exp(s[j]) for j in top) / z
            rows += 1
    return total / rows


# --------------------------------------------------------------------------- outputs


@pytest.mark.parametrize("hq,hkv,pad", [(4, 4, 0), (4, 2, 0), (6, 2, [0, 2]), (4, 1, [3, 0])])
def test_full_policy_equals_kernel_attend(hq, hkv, pad):
    q, k, v = _qkv(2, hq, hkv, 6)
    allowed = _causal(2, 6, pad)
    run = BudgetRun([Budget("full")] * 2)
    out, w = run.attend(0, q, k, v, allowed, 0.3)
    ref_out, ref_w = attend(q, k, v, allowed, 0.3)
    assert torch.allclose(out, ref_out, atol=1e-6, rtol=0)
    assert torch.allclose(w, ref_w, atol=1e-6, rtol=0)
    assert not torch.isnan(out).any()


def test_full_policy_without_model_mask_equals_attend():
    q, k, v = _qkv(1, 2, 2, 5)
    out, w = BudgetRun([Budget("full")], causal=False).attend(0, q, k, v, None, 0.5)
    ref_out, ref_w = attend(q, k, v, None, 0.5)
    assert torch.allclose(out, ref_out, atol=1e-6) and torch.allclose(w, ref_w, atol=1e-6)


def test_budget_output_is_attention_over_kept_keys():
    """window K=2: each query attends (renormalised) to itself and its predecessor only."""
    q, k, v = _qkv(1, 2, 1, 5)
    out, w = BudgetRun([Budget("window", keys=2)]).attend(0, q, k, v, _causal(1, 5), 0.4)
    keep = torch.tensor([[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 1, 1]],
                        dtype=torch.bool)
    ref_out, ref_w = attend(q, k, v, keep, 0.4)
    assert torch.allclose(out, ref_out, atol=1e-6) and torch.allclose(w, ref_w, atol=1e-6)
    assert torch.equal(w[0, 0] > 0, keep)


@pytest.mark.parametrize("gap", [5.0, 12.0, 16.0, 20.0, 40.0, 110.0])
def test_kept_keys_with_tiny_pre_mask_mass_are_renormalised_exactly(gap):
    """Window K=2 where the kept keys sit ``gap`` below a dropped key 0: the kept keys hold as little
    as ~e^-gap of the pre-mask softmax (down to float32 underflow), yet their renormalised weights
    must still be the exact softmax over the kept keys."""
    n = 5
    q = torch.ones(1, 1, n, 1)
    kvals = torch.tensor([0.0] + [-gap - 0.5 * j for j in range(1, n)])  # scores = key values (q = 1, scale 1)
    k = kvals.view(1, 1, n, 1)
    v = torch.randn(1, 1, n, 3, generator=torch.Generator().manual_seed(0))
    out, w = BudgetRun([Budget("window", keys=2)]).attend(0, q, k, v, _causal(1, n), 1.0)
    # float64 reference: row i keeps {i-1, i}; weights = softmax of their scores
    ref_w = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        js = [j for j in (i - 1, i) if j >= 0]
        e = torch.tensor([math.exp(float(kvals[j]) - float(kvals[js[-1]])) for j in js], dtype=torch.float64)
        ref_w[i, js] = e / e.sum()
    assert not torch.isnan(w).any()
    assert torch.allclose(w[0, 0].double(), ref_w, atol=1e-5, rtol=0)
    assert torch.allclose(out[0, 0].double(), ref_w @ v[0, 0].double(), atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- statistics


@pytest.mark.parametrize("hkv", [3, 1])
def test_window_stats(hkv):
    q, k, v = _qkv(1, 3, hkv, 5)
    run = BudgetRun([Budget("window", keys=2)])
    run.attend(0, q, k, v, _causal(1, 5), 0.35)
    st = run.stats[0]
    assert st.allowed_pairs == 3 * (1 + 2 + 3 + 4 + 5)
    assert st.kept_pairs == 3 * (1 + 2 + 2 + 2 + 2)
    assert st.scored_pairs == st.kept_pairs
    assert st.kv_keys == 2 * hkv  # the last row holds K = 2 keys per KV head


@pytest.mark.parametrize("hkv", [3, 1])
def test_topk_stats_and_mass(hkv):
    q, k, v = _qkv(1, 3, hkv, 5, seed=3)
    allowed = _causal(1, 5)
    run = BudgetRun([Budget("topk", keys=2)])
    run.attend(0, q, k, v, allowed, 0.35)
    st = run.stats[0]
    assert st.allowed_pairs == 45
    assert st.kept_pairs == 27
    assert st.scored_pairs == 45  # an oracle scores every allowed pair
    assert st.kv_keys == 5 * hkv  # it cannot evict: every key of the last row stays cached
    assert st.mass_kept == pytest.approx(_ref_topk_mass(q, k, allowed, 0.35, 2), abs=1e-6)
    assert 0 < st.mass_kept < 1


def test_topk_mass_hand_computed():
    # d = 1, q = 1 everywhere, keys 0, 1, 2, scaling 1: every row's scores are [0, 1, 2][: i + 1].
    q = torch.ones(1, 1, 3, 1)
    k = torch.tensor([0.0, 1.0, 2.0]).view(1, 1, 3, 1)
    v = torch.randn(1, 1, 3, 1)
    e = math.e
    run = BudgetRun([Budget("topk", keys=1)])
    run.attend(0, q, k, v, _causal(1, 3), 1.0)
    # row 0: 1 ; row 1: e / (1 + e) ; row 2: e^2 / (1 + e + e^2)
    expected = (1 + e / (1 + e) + e**2 / (1 + e + e**2)) / 3
    assert run.stats[0].mass_kept == pytest.approx(expected, abs=1e-6)

    run = BudgetRun([Budget("topk", keys=2)])
    run.attend(0, q, k, v, _causal(1, 3), 1.0)
    expected = (1 + 1 + (e + e**2) / (1 + e + e**2)) / 3
    assert run.stats[0].mass_kept == pytest.approx(expected, abs=1e-6)


def test_full_stats():
    q, k, v = _qkv(1, 4, 2, 5)
    run = BudgetRun([Budget("full")])
    run.attend(0, q, k, v, _causal(1, 5), 0.35)
    st = run.stats[0]
    assert st.allowed_pairs == st.kept_pairs == st.scored_pairs == 4 * 15
    assert st.mass_kept == 1.0
    assert st.kv_keys == 5 * 2


def test_stats_with_padding_rows():
    # Two padding tokens: rows allow 0, 0, 1, 2, 3 keys; the empty rows do not count in the mass mean.
    q, k, v = _qkv(1, 2, 1, 5)
    allowed = _causal(1, 5, 2)
    run = BudgetRun([Budget("full")])
    out, _ = run.attend(0, q, k, v, allowed, 0.35)
    st = run.stats[0]
    assert st.allowed_pairs == st.kept_pairs == 2 * 6
    assert st.mass_kept == 1.0
    assert torch.equal(out[0, :, :2], torch.zeros(2, 2, 8))

    run = BudgetRun([Budget("topk", keys=1)])
    out, _ = run.attend(0, q, k, v, allowed, 0.35)
    st = run.stats[0]
    assert st.kept_pairs == 2 * 3 and st.allowed_pairs == 2 * 6
    assert st.mass_kept == pytest.approx(_ref_topk_mass(q, k, allowed, 0.35, 1), abs=1e-6)
    assert not torch.isnan(out).any() and torch.equal(out[0, :, :2], torch.zeros(2, 2, 8))


@pytest.mark.parametrize(
    "budget,kept_per_head,scores_all,kv_per_head",
    [
        # causal n = 5; kept per head = sum over rows of the keys kept
        (Budget("window", keys=2), 1 + 2 + 2 + 2 + 2, False, 2),
        (Budget.of("sink_window", keys=3, sinks=1), 1 + 2 + 3 + 3 + 3, False, 3),
        (Budget("h2o", keys=3), 1 + 2 + 3 + 3 + 3, False, 3),
        (Budget.of("random", keys=2, seed=4), 1 + 2 + 2 + 2 + 2, False, 5),
        (Budget("topk", keys=2), 1 + 2 + 2 + 2 + 2, True, 5),
        (Budget("topk", ratio=0.5), 1 + 1 + 2 + 2 + 3, True, 5),
    ],
)
def test_scored_and_kept_pairs_per_policy(budget, kept_per_head, scores_all, kv_per_head):
    hq, hkv = 4, 2
    q, k, v = _qkv(1, hq, hkv, 5, seed=8)
    run = BudgetRun([budget])
    run.attend(0, q, k, v, _causal(1, 5), 0.35)
    st = run.stats[0]
    assert st.allowed_pairs == hq * 15
    assert st.kept_pairs == hq * kept_per_head
    assert st.scored_pairs == (st.allowed_pairs if scores_all else st.kept_pairs)
    assert st.kv_keys == kv_per_head * hkv


def test_topp_stats():
    hq, n, p = 2, 6, 0.7
    q, k, v = _qkv(1, hq, hq, n, seed=2)
    run = BudgetRun([Budget("topp", ratio=p)])
    run.attend(0, q, k, v, _causal(1, n), 1.0)
    # independent count of the smallest sets reaching p, and of the mass they hold
    kept, mass = 0, 0.0
    for h in range(hq):
        for i in range(n):
            e = [math.exp(float(q[0, h, i] @ k[0, h, j])) for j in range(i + 1)]
            probs = sorted((x / sum(e) for x in e), reverse=True)
            held = 0.0
            for pr in probs:
                if held >= p:
                    break
                held += pr
                kept += 1
            mass += held
    st = run.stats[0]
    assert st.kept_pairs == kept
    assert st.scored_pairs == st.allowed_pairs == hq * n * (n + 1) // 2
    assert st.mass_kept == pytest.approx(mass / (hq * n), abs=1e-6)
    assert st.mass_kept >= p
    assert st.kv_keys == n * hq


def test_stats_accumulate_over_layers():
    q, k, v = _qkv(1, 3, 3, 5)
    run = BudgetRun([Budget("window", keys=2)])
    for layer in range(3):
        run.attend(layer, q, k, v, _causal(1, 5), 0.35)
    st = run.stats[0]
    assert st.kept_pairs == 3 * 27 and st.allowed_pairs == 3 * 45 and st.kv_keys == 3 * 6


# --------------------------------------------------------------------------- several budgets in one batch


BATCH_BUDGETS = [
    Budget("full"),
    Budget("topk", keys=2),
    Budget("topp", ratio=0.6),
    Budget("window", ratio=0.5),
    Budget.of("sink_window", keys=4, sinks=1),
    Budget("h2o", keys=3),
    Budget.of("random", keys=3, seed=9),
    Budget("topk", keys=(1, 2, 3, 4)),
]


@pytest.mark.parametrize("same_text", [True, False])
def test_batch_of_budgets_equals_each_alone(same_text):
    b, hq, hkv, n = len(BATCH_BUDGETS), 4, 2, 7
    if same_text:  # the app's sweep: one text, several budgets
        q, k, v = (x.expand(b, -1, -1, -1).contiguous() for x in _qkv(1, hq, hkv, n, seed=5))
    else:
        q, k, v = _qkv(b, hq, hkv, n, seed=5)
    allowed = _causal(b, n)
    run = BudgetRun(BATCH_BUDGETS)
    outs = [run.attend(layer, q, k, v, allowed, 0.3) for layer in range(2)]
    for r, budget in enumerate(BATCH_BUDGETS):
        alone = BudgetRun([budget])
        for layer in range(2):
            out, w = alone.attend(layer, q[r:r + 1], k[r:r + 1], v[r:r + 1], allowed[r:r + 1], 0.3)
            assert torch.allclose(outs[layer][0][r:r + 1], out, atol=1e-6), (budget.label, layer)
            assert torch.allclose(outs[layer][1][r:r + 1], w, atol=1e-6), (budget.label, layer)
        assert run.stats[r].kept_pairs == alone.stats[0].kept_pairs
        assert run.stats[r].scored_pairs == alone.stats[0].scored_pairs
        assert run.stats[r].allowed_pairs == alone.stats[0].allowed_pairs
        assert run.stats[r].kv_keys == alone.stats[0].kv_keys
        assert run.stats[r].mass_kept == pytest.approx(alone.stats[0].mass_kept, abs=1e-6)


def test_batch_with_padding_equals_each_alone():
    budgets = [Budget("topk", keys=2), Budget("window", keys=2), Budget.of("sink_window", keys=3, sinks=1),
               Budget("h2o", keys=2)]
    q, k, v = _qkv(4, 2, 1, 6, seed=6)
    allowed = _causal(4, 6, [2, 0, 1, 3])
    run = BudgetRun(budgets)
    out, _ = run.attend(0, q, k, v, allowed, 0.3)
    for r, budget in enumerate(budgets):
        alone, _ = BudgetRun([budget]).attend(0, q[r:r + 1], k[r:r + 1], v[r:r + 1], allowed[r:r + 1], 0.3)
        assert torch.allclose(out[r:r + 1], alone, atol=1e-6), budget.label
    assert not torch.isnan(out).any()


def test_h2o_on_a_left_padded_row_equals_the_text_without_padding():
    """The padding is taken out before h2o simulates its cache: the real tokens' output is the same."""
    n, pad = 10, 3
    q, k, v = _qkv(1, 2, 1, n, seed=7)
    out, _ = BudgetRun([Budget("h2o", keys=4)]).attend(0, q, k, v, _causal(1, n, [pad]), 0.3)
    alone, _ = BudgetRun([Budget("h2o", keys=4)]).attend(0, q[..., pad:, :], k[..., pad:, :], v[..., pad:, :],
                                                          _causal(1, n - pad), 0.3)
    assert torch.allclose(out[..., pad:, :], alone, atol=1e-6)


def test_the_same_budget_on_every_batch_row_gives_each_row_its_own_numbers():
    q, k, v = _qkv(3, 2, 2, 5, seed=1)
    allowed = _causal(3, 5)
    run = BudgetRun([Budget("topk", keys=2)] * 3)
    out, _ = run.attend(0, q, k, v, allowed, 0.3)
    assert len(run.stats) == 3
    for r in range(3):
        alone = BudgetRun([Budget("topk", keys=2)])
        o, _ = alone.attend(0, q[r:r + 1], k[r:r + 1], v[r:r + 1], allowed[r:r + 1], 0.3)
        assert torch.allclose(out[r:r + 1], o, atol=1e-6)
        assert run.stats[r].kept_pairs == alone.stats[0].kept_pairs == 2 * 9


def test_budget_count_must_match_batch():
    q, k, v = _qkv(3, 2, 2, 4)
    run = BudgetRun([Budget("full"), Budget("topk", keys=1)])
    with pytest.raises(ValueError, match="2 budgets for a batch of 3"):
        run.attend(0, q, k, v, _causal(3, 4), 0.3)


def test_per_layer_keys():
    q, k, v = _qkv(1, 2, 2, 5)
    run = BudgetRun([Budget("window", layer_keys=(1, 3))])
    run.attend(0, q, k, v, _causal(1, 5), 0.3)
    assert run.stats[0].kept_pairs == 2 * 5  # K = 1 in layer 0
    run.attend(1, q, k, v, _causal(1, 5), 0.3)
    assert run.stats[0].kept_pairs == 2 * 5 + 2 * (1 + 2 + 3 + 3 + 3)  # K = 3 in layer 1


# --------------------------------------------------------------------------- capture


def test_capture_requested_layers_only_as_float16():
    q, k, v = _qkv(2, 4, 2, 5)
    allowed = _causal(2, 5)
    run = BudgetRun([Budget("window", keys=2), Budget("full")], capture=[1])
    returned = {layer: run.attend(layer, q, k, v, allowed, 0.3)[1] for layer in range(3)}
    assert set(run.weights) == {1}
    w = run.weights[1]
    assert w.dtype == torch.float16
    assert w.shape == (2, 4, 5, 5)
    assert torch.allclose(w.float(), returned[1], atol=1e-3)
    assert set(run.keep_masks) == {1}
    km = run.keep_masks[1]
    assert km.dtype == torch.bool and km.shape == (2, 4, 5, 5)
    window = torch.tensor([[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 1, 1]],
                          dtype=torch.bool)
    assert torch.equal(km[0], window.expand(4, 5, 5))
    assert torch.equal(km[1], allowed[1].expand(4, 5, 5))


def test_capture_all_and_none():
    q, k, v = _qkv(1, 2, 2, 4)
    run = BudgetRun([Budget("topk", keys=1)], capture="all")
    for layer in range(3):
        run.attend(layer, q, k, v, _causal(1, 4), 0.3)
    assert set(run.weights) == {0, 1, 2}
    assert all(w.dtype == torch.float16 for w in run.weights.values())
    run = BudgetRun([Budget("topk", keys=1)])
    for layer in range(3):
        run.attend(layer, q, k, v, _causal(1, 4), 0.3)
    assert run.weights == {} and run.keep_masks == {}


# --------------------------------------------------------------------------- through the transformers adapter


class _Layer(torch.nn.Module):
    def __init__(self, layer_idx):
        super().__init__()
        self.layer_idx = layer_idx
        self.num_key_value_groups = 2


def test_adapter_passes_the_layer_to_the_run():
    q, k, v = _qkv(2, 4, 2, 5)
    allowed = _causal(2, 5)
    run = BudgetRun([Budget("window", keys=2)] * 2, capture=[3])
    out, w = attnviz_attention(_Layer(3), q, k, v, allowed, scaling=0.3, attnviz=run)
    assert out.shape == (2, 5, 4, 8)  # (batch, q, heads, d) like transformers' eager attention
    ref_out, ref_w = BudgetRun([Budget("window", keys=2)] * 2).attend(3, q, k, v, allowed, 0.3)
    assert torch.allclose(out, ref_out.transpose(1, 2), atol=1e-6)
    assert torch.allclose(w, ref_w, atol=1e-6)
    assert set(run.weights) == {3}
    assert [st.kept_pairs for st in run.stats] == [4 * 9, 4 * 9]  # window K=2, per batch row


# --------------------------------------------------------------------------- packed runs


PACKED_BUDGETS = [Budget("topk", keys=3), Budget("window", keys=2), Budget.of("sink_window", keys=4, sinks=1),
                  Budget.of("random", keys=3, seed=2), Budget("topp", ratio=0.7), Budget("full")]


def _pack(q, k, v, prefixes):
    """Segments for texts ``q, k, v`` whose first ``prefixes[b]`` tokens are not recomputed, and the packed
    ``(q, k, v)`` holding each segment's new tokens one after another."""
    from attnviz.engine.run import Segment

    n = q.shape[2]
    starts = [sum(n - p for p in prefixes[:b]) for b in range(len(prefixes))]
    segments = [Segment(start=s, length=n - p, prefix=p) for s, p in zip(starts, prefixes, strict=True)]
    return segments, [torch.cat([t[:, :, p:] for p in prefixes], dim=2) for t in (q, k, v)]


def _assert_segments_equal_alone(run, out, budgets, segments, qkv):
    """Each segment of a packed run (output ``out``, scaling 0.3) equals its budget run alone on the whole
    text: its new rows' outputs, and its counts once the prefix rows (which keep every key) are subtracted."""
    q, k, v = qkv
    hq, n = q.shape[1], q.shape[2]
    for b, (budget, seg) in enumerate(zip(budgets, segments, strict=True)):
        alone = BudgetRun([budget])
        whole, _ = alone.attend(0, q, k, v, _causal(1, n), 0.3)
        assert torch.allclose(out[:, :, seg.start:seg.start + seg.length], whole[:, :, seg.prefix:], atol=1e-6)
        prefix_pairs = hq * seg.prefix * (seg.prefix + 1) // 2
        assert run.stats[b].allowed_pairs == alone.stats[0].allowed_pairs - prefix_pairs
        assert run.stats[b].kept_pairs == alone.stats[0].kept_pairs - prefix_pairs
        assert run.stats[b].kv_keys == alone.stats[0].kv_keys


@pytest.mark.parametrize("block", [2, 128])
def test_packed_segments_equal_each_budget_on_its_own_text(monkeypatch, block):
    """A packed row of segments (prefix from the cache + new tokens) equals running each budget
    on the whole text whose first ``prefix`` rows keep every key anyway, query blocks or not."""
    import attnviz.engine.packed as bc

    monkeypatch.setattr(bc, "QUERY_BLOCK", block)
    hq, hkv, n, d = 4, 2, 9, 8
    q, k, v = _qkv(1, hq, hkv, n, d, seed=11)
    prefixes = [3, 2, 4, 3, 0, 9 - 1]
    segments, packed = _pack(q, k, v, prefixes)
    run = BudgetRun(PACKED_BUDGETS, segments=segments, prefix_kv=[(k, v)])
    out, weights = run.attend(0, *packed, None, 0.3)
    assert weights is None and out.shape == (1, hq, packed[0].shape[2], d)
    _assert_segments_equal_alone(run, out, PACKED_BUDGETS, segments, (q, k, v))


@pytest.mark.parametrize("block", [2, 128])
def test_packed_capture_equals_each_budget_captured_on_its_own(monkeypatch, block):
    """Captured weights and keep masks of a packed run: prefix rows copied from the full run's, the rest
    recomputed; each segment's whole (q_heads, n, n) matrices equal those of the budget run alone."""
    import attnviz.engine.packed as bc

    monkeypatch.setattr(bc, "QUERY_BLOCK", block)
    hq, hkv, n, d = 4, 2, 9, 8
    q, k, v = _qkv(1, hq, hkv, n, d, seed=5)
    full = BudgetRun([Budget("full")], capture=[0])
    full.attend(0, q, k, v, _causal(1, n), 0.3)
    prefixes = [3, 2, 4, 3, 0, 9 - 1]
    segments, packed = _pack(q, k, v, prefixes)
    run = BudgetRun(PACKED_BUDGETS, segments=segments, prefix_kv=[(k, v)], capture=[0],
                    prefix_weights={0: full.weights[0][0]})
    run.attend(0, *packed, None, 0.3)
    assert run.weights[0].shape == (len(segments), hq, n, n) and run.weights[0].dtype == torch.float16
    for b, budget in enumerate(PACKED_BUDGETS):
        alone = BudgetRun([budget], capture=[0])
        alone.attend(0, q, k, v, _causal(1, n), 0.3)
        assert torch.allclose(run.weights[0][b].float(), alone.weights[0][0].float(), atol=1e-3), budget.label
        assert torch.equal(run.keep_masks[0][b], alone.keep_masks[0][0]), budget.label


@pytest.mark.parametrize("together_bytes", [64 * 2**20, 0])
@pytest.mark.parametrize("prefixes", [[0, 0, 3, 0], [4, 2, 3, 6]])
def test_packed_h2o_segments_decided_together_equal_each_alone(monkeypatch, together_bytes, prefixes):
    """Several h2o segments of one pass share one per-query loop (keep_many); each equals its budget alone,
    and so does the one-by-one fallback when their scores would not fit (TOGETHER_BYTES).  A segment may
    resume after its cache-filling prefix: those rows are scored from the full run's queries."""
    import attnviz.engine.packed as bc

    monkeypatch.setattr(bc, "TOGETHER_BYTES", together_bytes)
    hq, hkv, n, d = 4, 2, 9, 8
    q, k, v = _qkv(1, hq, hkv, n, d, seed=3)
    budgets = [Budget("h2o", keys=4), Budget("h2o", keys=2), Budget("topk", keys=3), Budget("h2o", keys=6)]
    segments, packed = _pack(q, k, v, prefixes)
    calls = []
    keep_many = H2O.keep_many
    monkeypatch.setattr(H2O, "keep_many", lambda self, s, *a: calls.append(len(s)) or keep_many(self, s, *a))
    run = BudgetRun(budgets, segments=segments, prefix_kv=[(k, v)], prefix_queries=[q * 0.3])
    out, _ = run.attend(0, *packed, None, 0.3)
    assert calls == ([3] if together_bytes else [1, 1, 1])
    _assert_segments_equal_alone(run, out, budgets, segments, (q, k, v))


def test_packed_run_checks_its_arguments():
    from attnviz.engine.run import Segment

    seg = [Segment(start=0, length=3, prefix=2)]
    with pytest.raises(ValueError, match="segments for"):
        BudgetRun([Budget("full"), Budget("full")], segments=seg, prefix_kv=[])
    with pytest.raises(ValueError, match="causal"):
        BudgetRun([Budget("full")], causal=False, segments=seg, prefix_kv=[])
    with pytest.raises(ValueError, match="prefix_weights"):
        BudgetRun([Budget("full")], capture="all", segments=seg, prefix_kv=[])
    with pytest.raises(ValueError, match="prefix_weights"):
        BudgetRun([Budget("full")], capture=[1], segments=seg, prefix_kv=[], prefix_weights={0: torch.ones(1)})
    with pytest.raises(ValueError, match="observers"):
        BudgetRun([Budget("full")], observers=[print], segments=seg, prefix_kv=[])
    with pytest.raises(ValueError, match="prefix_kv"):
        BudgetRun([Budget("full")], segments=seg)
    with pytest.raises(ValueError, match="prefix_queries"):
        BudgetRun([Budget("h2o", keys=2)], segments=seg, prefix_kv=[])
