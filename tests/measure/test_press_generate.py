"""Greedy decoding from a pressed cache: masking the dropped positions equals decoding from a really pruned cache."""

import pytest
import torch

from attnviz.budget import Budget, BudgetError
from attnviz.engine.run import BudgetRun
from attnviz.engine.trunk import cache_tensors, run_trunk
from attnviz.generate import DecodeState, Generation, _decode, _gather_slots
from attnviz.measure.passes import encode_for, reference_pass
from attnviz.measure.press import generate_pressed, press_pass
from attnviz.presses import get_press

TEXT = ("The council voted on Tuesday evening to rebuild the old harbour wall, which was badly damaged in last "
        "winter's storms. The wall, built of granite blocks in 1868, protects the inner harbour where about thirty "
        "small fishing boats are moored.")
C = 40
NEW = 12

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def ref(smollm2):
    return reference_pass(smollm2, encode_for(smollm2, TEXT))


def _pruned_decode(lm, ids, mask):
    """The cache really cut to the kept positions (equal counts per KV head), then plain greedy decoding."""
    prompt = ids[:, :C]
    hidden, cache, _ = run_trunk(lm.model, prompt, BudgetRun([Budget("full")], causal=True), keep_cache=True)
    layers = []
    for (k, v), keep in zip(cache_tensors(cache), mask, strict=True):
        slots = torch.arange(C).expand(keep.shape[0], -1)[keep].view(keep.shape[0], -1)
        layers.append((_gather_slots(k, slots), _gather_slots(v, slots)))
    out = Generation(budget=Budget("full"), prompt_ids=prompt[0].tolist(), bytes_per_key=1)
    return _decode(lm, out, DecodeState(layers=tuple(layers)), hidden[0, -1:], NEW)


@pytest.mark.parametrize("name", ["streaming_llm", "knorm"])
def test_masked_decoding_equals_a_pruned_cache(smollm2, ref, name):
    press = get_press(name)
    row = press_pass(smollm2, ref, C, [(press, 0.75)])[0]
    ids = ref.encoded.ids
    masked = generate_pressed(smollm2, ids, C, row.kept_mask, NEW)
    pruned = _pruned_decode(smollm2, ids, row.kept_mask)
    assert masked.new_ids == pruned.new_ids
    assert masked.kv_keys == pruned.kv_keys  # the kept cache, counted as if cut
    assert masked.kv_keys[0] == int(row.kept_mask.sum())


def test_nothing_dropped_is_the_full_continuation_and_head_wise_presses_decode(smollm2, ref):
    ids = ref.encoded.ids
    full = generate_pressed(smollm2, ids, C, None, NEW)
    assert full.new_ids[0] == int(ref.top1[C - 1])  # the context's last position is read before compression
    every = torch.ones(len(ref.kv), ref.kv[0][0].shape[1], C, dtype=torch.bool)
    assert generate_pressed(smollm2, ids, C, every, NEW).new_ids == full.new_ids
    row = press_pass(smollm2, ref, C, [(get_press("adakv", scorer="knorm"), 0.5)])[0]
    counts = row.kept_mask.sum(-1)
    assert not bool((counts == counts[:, :1]).all())  # heads keep different numbers
    ada = generate_pressed(smollm2, ids, C, row.kept_mask, NEW)
    assert len(ada.new_ids) == NEW and ada.new_ids[0] == full.new_ids[0]
    layers, kv_heads = counts.shape
    assert ada.kv_keys[-1] == int(counts.sum()) + (NEW - 1) * layers * kv_heads


def test_a_context_the_text_cannot_take_is_one_line(smollm2, ref):
    with pytest.raises(BudgetError, match="context"):
        generate_pressed(smollm2, ref.encoded.ids, 0, None, NEW)
