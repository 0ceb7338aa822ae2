"""The headline result on the shipped prose (SmolLM2, 400 tokens).

A plain sliding window of 32 keys loses the first tokens, which act as
"attention sinks"; keeping 4 of them (StreamingLLM) at the very same density
recovers most of the quality, and the oracle topk is closer still.
"""

from __future__ import annotations

import pytest

from attnviz.bench import bench_text
from attnviz.budget import Budget
from attnviz.measure import sweep

N = 400
K = 32


@pytest.fixture(scope="module")
def rows(smollm2):
    result = sweep(smollm2, bench_text(), [Budget("window", keys=K), Budget.of("sink_window", keys=K, sinks=4),
                                           Budget("topk", keys=K)], max_tokens=N)
    assert result["n_tokens"] == N
    assert result["truncated_from"] > N
    return {row["policy"]: row for row in result["rows"]}


def test_same_density(rows):
    # per query min(K, i + 1) keys for all three: same count, hence same density
    expected = sum(min(K, i + 1) for i in range(N)) / (N * (N + 1) / 2)
    densities = {p: r["density"] for p, r in rows.items()}
    assert densities["window"] == densities["sink_window"] == densities["topk"]
    assert densities["window"] == pytest.approx(expected, rel=1e-12)


def test_sinks_halve_the_perplexity(rows):
    window, sinks = rows["window"]["quality"], rows["sink_window"]["quality"]
    assert window["ppl"] >= 2 * sinks["ppl"], (window["ppl"], sinks["ppl"])
    assert sinks["kl"] < window["kl"]


def test_topk_is_closest_to_full(rows):
    full_ppl = rows["topk"]["quality"]["ppl_full"]
    topk = rows["topk"]["quality"]
    for other in ("window", "sink_window"):
        q = rows[other]["quality"]
        assert q["ppl_full"] == pytest.approx(full_ppl, rel=1e-12)  # one reference for all rows
        assert topk["kl"] < q["kl"], other
        assert abs(topk["ppl"] - full_ppl) < abs(q["ppl"] - full_ppl), other
    assert topk["ppl"] >= full_ppl * 0.999  # budgets should not beat full attention by much


def test_cache_and_flops_tell_the_cost_story(rows):
    window, sinks, topk = rows["window"]["compute"], rows["sink_window"]["compute"], rows["topk"]["compute"]
    kv_per_key = 3 * 30 * 2 * 64 * 4
    assert window["kv_bytes"] == sinks["kv_bytes"] == K * kv_per_key
    assert topk["kv_bytes"] == topk["kv_bytes_full"] == N * kv_per_key
    assert window["attn_flops"] == sinks["attn_flops"] < topk["attn_flops"]
