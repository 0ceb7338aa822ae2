"""Press mode on SmolLM2: the masked continuation equals a really pruned cache, and the rows' numbers."""

import threading

import pytest
import torch
from transformers import DynamicCache

from attnviz.budget import Budget
from attnviz.measure.passes import budget_pass, encode_for, reference_pass
from attnviz.measure.press import check_context, kept_positions, press_pass, press_views
from attnviz.policies import LayerView, get_policy
from attnviz.presses import get_press

TEXT = ("The council voted on Tuesday evening to rebuild the old harbour wall, which was badly damaged in last "
        "winter's storms. The wall, built of granite blocks in 1868, protects the inner harbour where about thirty "
        "small fishing boats are moored. During the storm in January, waves broke through a section near the "
        "lighthouse, flooding two warehouses and sinking a boat.")
C = 48


@pytest.fixture(scope="module")
def ref(smollm2):
    enc = encode_for(smollm2, TEXT)
    assert enc.n_tokens > C + 20
    return reference_pass(smollm2, enc)


def _pruned_cache_quality(eager_model, ref, mask):
    """kvpress's way: gather the kept keys and values into a smaller cache, then read the continuation."""
    n = ref.n_tokens
    cache = DynamicCache()
    for layer, (k, v) in enumerate(ref.kv):
        idx = torch.stack([torch.nonzero(h).flatten() for h in mask[layer]])  # (kv_heads, kept)
        gather = idx.view(1, idx.shape[0], -1, 1).expand(1, -1, -1, k.shape[-1])
        cache.update(k[:, :, :C].gather(2, gather), v[:, :, :C].gather(2, gather), layer)
    with torch.inference_mode():
        cont = eager_model(ref.ids[:, C:n - 1], past_key_values=cache,
                           position_ids=torch.arange(C, n - 1).view(1, -1)).logits[0]
        full = eager_model(ref.ids).logits[0]
    pressed = torch.cat([full[C - 1:C], cont])  # position C-1 is the context's last: read before compression
    lp, lq = torch.log_softmax(full[C - 1:n - 1].double(), -1), torch.log_softmax(pressed.double(), -1)
    targets = ref.ids[0, C:n]
    kl = float((lp.exp() * (lp - lq)).sum(-1).mean())
    top1 = float((lp.argmax(-1) == lq.argmax(-1)).double().mean())
    ppl = float(torch.exp(-lq.gather(1, targets.view(-1, 1)).mean()))
    ppl_full = float(torch.exp(-lp.gather(1, targets.view(-1, 1)).mean()))
    return kl, top1, ppl, ppl_full


@pytest.mark.parametrize("name,params", [("snapkv", {"window_size": 16}), ("knorm", {}), ("streaming_llm", {})])
def test_masking_equals_a_pruned_cache(smollm2, smollm2_eager, ref, name, params):
    press = get_press(name, **params)
    (row,) = press_pass(smollm2, ref, C, [(press, 0.5)])
    assert row.kept == C // 2 and row.context == C
    kl, top1, ppl, ppl_full = _pruned_cache_quality(smollm2_eager.model, ref, row.kept_mask)
    assert row.quality.kl == pytest.approx(kl, rel=1e-3, abs=1e-5)
    assert row.quality.top1 == pytest.approx(top1)
    assert row.quality.ppl == pytest.approx(ppl, rel=1e-4)
    assert row.quality.ppl_full == pytest.approx(ppl_full, rel=1e-4)
    n = ref.n_tokens
    per_key = 3 * 30 * 2 * 64 * 4
    assert row.kv_bytes == (C // 2 + n - C) * per_key and row.kv_bytes_full == n * per_key


def test_ratio_zero_is_the_full_run(smollm2, ref):
    (row,) = press_pass(smollm2, ref, C, [(get_press("tova"), 0.0)])
    assert row.quality.kl == 0.0 and row.quality.top1 == 1.0
    assert row.quality.ppl == pytest.approx(row.quality.ppl_full, rel=1e-9)
    assert len(row.top1) == ref.n_tokens - C


def test_streaming_llm_keeps_what_sink_window_keeps(smollm2, ref):
    """StreamingLLM at ratio r and our sink_window with K = kept, S = n_sink keep the same context positions."""
    views = press_views(smollm2, ref, C)
    for ratio in (0.5, 0.75, 0.875):  # kept > n_sink (sink_window keeps itself: it needs K > S)
        mask = kept_positions(get_press("streaming_llm", n_sink=4), ratio, views)
        kept = int(mask[0, 0].sum())
        policy = get_policy("sink_window", sinks=4)
        ours, _ = policy.prompt_cache(Budget(policy, keys=kept), C, 3, LayerView(layer=0, causal=True, group=3))
        assert torch.equal(mask[0], ours) and torch.equal(mask, mask[:1].expand_as(mask))


def test_one_line_for_a_context_the_text_cannot_take(ref):
    from attnviz.budget import BudgetError

    for bad in (0, ref.n_tokens, ref.n_tokens + 5):
        with pytest.raises(BudgetError, match="shorter than the text"):
            check_context(bad, ref.n_tokens)
    with pytest.raises(BudgetError, match="window_size=64"):
        check_context(40, ref.n_tokens, [get_press("snapkv")])


def test_a_press_and_a_budget_at_once_each_get_their_own_numbers(smollm2, ref):
    """Two sessions on one shared model at the same moment: each gets exactly its single-session numbers."""
    press = get_press("snapkv", window_size=16)
    alone_press = press_pass(smollm2, ref, C, [(press, 0.75)])[0]
    alone_budget = budget_pass(smollm2, ref, [Budget("topk", keys=6)])[0]
    got = {}

    def run_press():
        for i in range(3):
            got[f"press{i}"] = press_pass(smollm2, ref, C, [(press, 0.75)])[0]

    def run_budget():
        for i in range(3):
            got[f"budget{i}"] = budget_pass(smollm2, ref, [Budget("topk", keys=6)])[0]

    threads = [threading.Thread(target=run_press), threading.Thread(target=run_budget)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(3):
        assert got[f"press{i}"].quality == alone_press.quality
        assert torch.equal(got[f"press{i}"].kept_mask, alone_press.kept_mask)
        assert got[f"budget{i}"].quality == alone_budget.quality
        assert got[f"budget{i}"].density == alone_budget.density


def test_our_evicting_policies_stand_beside_the_presses(smollm2, ref):
    from attnviz.budget import BudgetError
    from attnviz.measure.press import policy_press_pass

    window, h2o = policy_press_pass(smollm2, ref, C, [Budget("window", keys=16), Budget("h2o", keys=16)])
    per_key = 3 * 30 * 2 * 64 * 4
    assert window.kv_bytes == 16 * per_key and window.kept == 16  # the cache stays at K through the continuation
    assert window.kept_mask.shape == (30, 3, C) and int(window.kept_mask[0, 0].sum()) == 16
    assert bool(window.kept_mask[0, 0, -16:].all()) and h2o.kept_mask is None
    assert window.label == "window K=16" and 0 < h2o.quality.kl < window.quality.kl
    assert window.to_json()["policy"] == "window" and "press" not in window.to_json()
    with pytest.raises(BudgetError, match="whole KV cache"):
        policy_press_pass(smollm2, ref, C, [Budget("topk", keys=16)])
