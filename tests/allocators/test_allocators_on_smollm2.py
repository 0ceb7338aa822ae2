"""Allocators on the real model: uniform unchanged, totals as promised, the allocation map, calibration cached."""

import numpy as np
import pytest
import torch

from attnviz.allocators import calibration, get_allocator
from attnviz.allocators import marginal as marginal_mod
from attnviz.allocators.demand import demand_of_reference
from attnviz.budget import Budget
from attnviz.engine.kernel import attention_scores
from attnviz.measure.passes import budget_pass, encode_for, reference_pass

TEXT = ("The old lighthouse keeper climbed the spiral stairs every evening at dusk. He trimmed the wick, polished "
        "the great lens, and wrote in his log the ships he saw pass. One stormy night a small fishing boat lost "
        "its way in the fog near the rocks, and only the steady beam showed the crew the safe channel home.")


@pytest.fixture(scope="module")
def ref(smollm2):
    return reference_pass(smollm2, encode_for(smollm2, TEXT))


@pytest.fixture(scope="module")
def uniform8(smollm2, ref):
    return budget_pass(smollm2, ref, [Budget("topk", keys=8)])[0]


def _same_numbers(a, b):
    assert a.density == b.density and a.stats.kept_pairs == b.stats.kept_pairs
    assert a.quality.kl == pytest.approx(b.quality.kl, abs=1e-6) and a.quality.top1 == b.quality.top1


def test_uniform_is_todays_budget(smollm2, ref, uniform8):
    got = budget_pass(smollm2, ref, [Budget("topk", keys=8, allocator="uniform")])[0]
    _same_numbers(got, uniform8)
    assert got.to_json()["allocator"] == "uniform"


def test_flat_schedules_equal_uniform(smollm2, ref, uniform8):
    """pyramid with slope 0 and heads guaranteeing each head its whole K are uniform by construction."""
    rows = budget_pass(smollm2, ref, [Budget("topk", keys=8, allocator=get_allocator("pyramid", slope=0.0)),
                                      Budget("topk", keys=8, allocator=get_allocator("heads", alpha=1.0))])
    for row in rows:
        _same_numbers(row, uniform8)


def test_totals_match_the_requested_size(smollm2, ref, uniform8):
    n = ref.n_tokens
    heads = budget_pass(smollm2, ref, [Budget("topk", keys=8, allocator="heads")])[0]
    assert heads.stats.kept_pairs == uniform8.stats.kept_pairs  # each row spends exactly H·K_row
    assert heads.stats.allowed_pairs == 30 * 9 * n * (n + 1) // 2


def test_pyramid_total_on_a_text_of_a_few_hundred_tokens(smollm2):
    """Σ K_l is exact; kept pairs differ only where a row has fewer keys than its layer's K_l (within 0.5%)."""
    ref = reference_pass(smollm2, encode_for(smollm2, calibration.shipped_text("lighthouses"), 200))
    uniform, pyramid = budget_pass(smollm2, ref, [Budget("topk", keys=8), Budget("topk", keys=8, allocator="pyramid")])
    assert sum(pyramid.plan["layer_keys"]) == 30 * 8
    assert pyramid.stats.kept_pairs == pytest.approx(uniform.stats.kept_pairs, rel=0.005)


def test_price_spends_the_total_on_the_reference_run(smollm2, ref, uniform8):
    row = budget_pass(smollm2, ref, [Budget("topk", keys=8, allocator="price")])[0]
    tau, floor = row.plan["tau"], 2
    n = ref.n_tokens
    allowed = torch.ones(n, n, dtype=torch.bool).tril().unsqueeze(0)
    kept = 0
    for query, (key, _) in zip(ref.queries, ref.kv, strict=True):  # the reference's own probabilities
        p = torch.softmax(attention_scores(query, key, 1.0)[0].masked_fill(~allowed, float("-inf")), -1)
        rank = p.argsort(-1, descending=True).argsort(-1)
        kept += int((((p >= tau) | (rank < floor)) & allowed).sum())
    assert kept == pytest.approx(uniform8.stats.kept_pairs, rel=0.02)
    assert demand_of_reference(ref) is demand_of_reference(ref, 2)  # made once per reference
    more = demand_of_reference(ref, 40)  # a larger floor: made again with more ranks, then kept
    assert more.ranks >= 40 and demand_of_reference(ref) is more
    assert more.kept(tau, floor) == pytest.approx(demand_of_reference(ref).kept(tau, floor))
    assert row.stats.scored_pairs == row.stats.allowed_pairs  # it reads every probability: every pair is scored
    assert row.compute.attn_flops == 2 * 64 * (row.stats.allowed_pairs + row.stats.kept_pairs)
    window = budget_pass(smollm2, ref, [Budget("window", keys=8, allocator="price")])[0]
    assert window.stats.scored_pairs == window.stats.allowed_pairs  # even with a policy that scores nothing


def test_allocation_map(smollm2, ref, uniform8):
    assert uniform8.allocation.shape == (30, 9)
    assert torch.allclose(uniform8.allocation, uniform8.allocation[0, 0].expand(30, 9))  # flat
    assert float(uniform8.allocation.mean()) == pytest.approx(uniform8.density)
    pyramid = budget_pass(smollm2, ref, [Budget("topk", keys=8, allocator="pyramid")])[0]
    per_layer = pyramid.allocation.mean(1)
    assert per_layer[0] > uniform8.allocation[0, 0] > per_layer[-1]
    heads = budget_pass(smollm2, ref, [Budget("topk", keys=8, allocator="heads")])[0]
    assert float(heads.allocation.std()) > 0.01  # heads differ
    row = pyramid.to_json()["allocation"]
    assert len(row["layers"]) == 30 and len(row["heads"]) == 30 and len(row["heads"][0]) == 9
    assert row["layer_keys"] == pyramid.plan["layer_keys"]


def test_marginal_calibrates_once_and_spends_the_total(smollm2, tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNVIZ_CACHE_DIR", str(tmp_path))
    enc = encode_for(smollm2, TEXT, 40)
    ref = reference_pass(smollm2, enc)
    calls = []
    real = marginal_mod.value_curves

    def counted(*args, **kwargs):
        calls.append(args[1:3])
        return real(*args, **kwargs)

    monkeypatch.setattr(marginal_mod, "value_curves", counted)
    b = Budget("topk", keys=4, allocator="marginal")
    row, uniform = budget_pass(smollm2, ref, [b, Budget("topk", keys=4)])
    assert calls == [("rivers", 40)]
    assert row.plan["calibration"] == "rivers" and len(row.plan["layer_keys"]) == 30
    assert row.stats.kept_pairs == pytest.approx(uniform.stats.kept_pairs, rel=0.02)
    keys = row.plan["curve_keys"]
    assert keys == [1, 2, 4, 8, 16, 32, 40] and np.array(row.plan["curve_kl"]).shape == (30, 7)
    assert list((tmp_path / "calibration").glob("marginal-*.npz"))  # cached on disk
    monkeypatch.setattr(calibration, "shipped_text", calibration.shipped_text)
    again = budget_pass(smollm2, ref, [b])[0]
    assert again.plan["layer_keys"] == row.plan["layer_keys"]


def test_duo_ranks_heads_and_spends_the_total(smollm2, ref, tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNVIZ_CACHE_DIR", str(tmp_path))
    uniform, duo = budget_pass(smollm2, ref, [Budget.of("sink_window", keys=16),
                                              Budget.of("sink_window", keys=16, allocator="duo")])
    assert len(duo.plan["retrieval_heads"]) == round(0.25 * 30 * 3)
    assert duo.stats.kept_pairs == pytest.approx(uniform.stats.kept_pairs, rel=0.02)
    full = [h for layer in duo.allocation for h in layer if float(h) == 1.0]
    assert len(full) >= len(duo.plan["retrieval_heads"]) * 3  # every query head of a retrieval KV head


def test_calibration_budgets_only_the_last_rows_packed_or_not(smollm2, ref):
    """A calibration budget keeps every key in all but its last rows: a packed pass skips those rows (taken from the
    full run) and a batched pass, which recomputes them, gives the same numbers."""
    from attnviz.allocators.marginal import _LastRows
    from attnviz.measure.passes import _exact_prefixes

    n = ref.n_tokens
    b = Budget("topk", layer_keys=tuple(2 if j == 5 else n for j in range(30)), allocator=_LastRows(rows=8, n=n))
    assert _exact_prefixes([b], n) == [n - 8]
    every = Budget("topk", layer_keys=b.layer_keys, allocator=_LastRows(rows=n, n=n))  # marginal's rows=1
    assert _exact_prefixes([every], n) == [2]  # every row from the policy's own prefix on is budgeted
    packed = budget_pass(smollm2, ref, [b])[0]
    batched = budget_pass(smollm2, ref, [b], pack=False)[0]
    assert packed.stats.kept_pairs == batched.stats.kept_pairs
    assert packed.quality.kl == pytest.approx(batched.quality.kl, rel=1e-3, abs=1e-7) and packed.quality.kl > 0
    rows = torch.arange(1, n + 1)
    dropped = int((rows[n - 8:] - torch.clamp(rows[n - 8:], max=2)).sum()) * 9  # layer 5's last 8 rows keep 2
    assert packed.stats.allowed_pairs - packed.stats.kept_pairs == dropped
