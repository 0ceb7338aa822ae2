"""ui.cached.get_continuations: one more new token extends the kept continuations by one decode step each."""

import threading

import pytest

import attnviz.generate as g
from attnviz.budget import Budget
from attnviz.generate import generate
from ui import cached

pytestmark = pytest.mark.model  # decodes with the real SmolLM2

PROMPT = "The trophy did not fit into the brown suitcase because it was too big. So the boy"


@pytest.fixture
def trunk_calls(monkeypatch):
    """The length of every token batch the trunk is run on, from any thread."""
    calls, lock, trunk = [], threading.Lock(), g.run_trunk

    def counting(*args, **kwargs):
        with lock:
            calls.append(args[1].shape[1])
        return trunk(*args, **kwargs)

    monkeypatch.setattr(g, "run_trunk", counting)
    return calls


def test_one_more_token_extends_both_continuations_by_one_step(smollm2, trunk_calls):
    cached._continuations.clear()
    budget = Budget("h2o", keys=8)
    before = cached.get_continuations("smollm2", PROMPT, budget, 6, 256)
    assert sorted(trunk_calls) == [1] * 10 + [19, 19]  # two prompt passes, 5 steps each
    trunk_calls.clear()
    after = cached.get_continuations("smollm2", PROMPT, budget, 7, 256)
    assert trunk_calls == [1, 1]  # one decode step per continuation, nothing recomputed
    assert [a.reused for a in after] == [6, 6]
    trunk_calls.clear()
    fewer = cached.get_continuations("smollm2", PROMPT, budget, 3, 256)
    assert trunk_calls == []  # a prefix of what is kept
    for b, a, f, made in zip(before, after, fewer, (Budget("full"), budget), strict=True):
        scratch = generate(smollm2, PROMPT, made, max_new_tokens=7, max_tokens=256)
        assert a.new_ids == scratch.new_ids and a.kv_keys == scratch.kv_keys
        assert b.new_ids == scratch.new_ids[:6] and len(b.kv_keys) == 6  # what an earlier page run got is unchanged
        assert f.new_ids == scratch.new_ids[:3]


def test_the_full_continuation_is_shared_by_every_budget(smollm2, trunk_calls):
    cached._continuations.clear()
    cached.get_continuations("smollm2", PROMPT, Budget("topk", keys=4), 3, 256)
    trunk_calls.clear()
    full, other = cached.get_continuations("smollm2", PROMPT, Budget("window", keys=6), 3, 256)
    assert sorted(trunk_calls) == [1, 1, 19]  # only the window continuation is decoded
    assert full.reused == 3 and other.reused == 0


def test_kept_states_stay_within_their_bound(smollm2, monkeypatch):
    cached._continuations.clear()
    monkeypatch.setattr(cached, "CONTINUATION_BYTES", 1)  # room for one state only
    cached.get_continuations("smollm2", PROMPT, Budget("topk", keys=4), 2, 256)
    store = cached._continuations()
    assert len(store.kept) == 1
