"""Tests for :mod:`attnviz.generate`: budgeted greedy decoding on the bundled SmolLM2.

References: transformers' own ``generate()`` (full attention); for the other policies, the
budgeted pass over the prompt and the generated tokens at once (teacher forcing), whose
next-token predictions the step-by-step loop with its evicted cache must reproduce; and
hand-checked eviction choices.
"""

from __future__ import annotations

import threading

import pytest
import torch

from attnviz.budget import Budget, BudgetError
from attnviz.engine.run import BudgetRun
from attnviz.engine.trunk import next_token_logprobs, run_trunk
from attnviz.generate import first_divergence, generate, generate_each
from attnviz.policies import get_policy
from attnviz.text import TextError

PROMPT = "The trophy did not fit into the brown suitcase because it was too big. So the boy"
L, HKV = 30, 3  # SmolLM2-135M: layers, KV heads
NEW = 10


def test_full_attention_continues_like_transformers_generate(smollm2, smollm2_eager):
    ours = generate(smollm2, PROMPT, Budget("full"), max_new_tokens=NEW)
    ids = torch.tensor([ours.prompt_ids])
    with torch.inference_mode():
        theirs = smollm2_eager.model.generate(ids, max_new_tokens=NEW, do_sample=False,
                                              attention_mask=torch.ones_like(ids))
    assert ours.new_ids == theirs[0, ids.shape[1]:].tolist()
    n = len(ours.prompt_ids)
    assert ours.kv_keys == [(n + i) * L * HKV for i in range(NEW)]  # the full cache grows by one key per step


@pytest.mark.parametrize("budget", [Budget("topk", keys=6), Budget("window", keys=8),
                                    Budget.of("sink_window", keys=8, sinks=2), Budget("h2o", keys=8)],
                         ids=lambda b: b.label)
def test_each_new_token_is_what_the_budgeted_pass_predicts_there(smollm2, budget):
    """Decoding step by step (evicting policies really drop keys from the cache) gives the same tokens as
    running the prompt plus those tokens through the model at once under the same budget."""
    gen = generate(smollm2, PROMPT, budget, max_new_tokens=NEW)
    ids = torch.tensor([gen.prompt_ids + gen.new_ids[:-1]])
    hidden = run_trunk(smollm2.model, ids, BudgetRun([budget], causal=True))[0][0]
    n = len(gen.prompt_ids)
    predicted = next_token_logprobs(smollm2.model, hidden[n - 1:]).argmax(-1).tolist()
    assert predicted == gen.new_ids


@pytest.mark.parametrize("policy", ["window", "sink_window", "h2o"])
def test_evicting_policies_hold_their_cache_at_its_size(smollm2, policy):
    params = {"sinks": 2} if policy == "sink_window" else {}
    gen = generate(smollm2, PROMPT, Budget.of(policy, keys=8, **params), max_new_tokens=NEW)
    assert len(gen.prompt_ids) > 8
    assert gen.kv_keys == [8 * L * HKV] * NEW
    assert gen.kv_bytes[0] == 8 * L * HKV * 2 * 64 * 4  # keys and values, 64 floats of 4 bytes each


def test_a_budget_that_covers_every_token_changes_nothing(smollm2):
    full = generate(smollm2, PROMPT, Budget("full"), max_new_tokens=NEW)
    room = len(full.prompt_ids) + NEW
    for budget in (Budget("topk", keys=room), Budget("window", keys=room), Budget("h2o", keys=room)):
        gen = generate(smollm2, PROMPT, budget, max_new_tokens=NEW)
        assert gen.new_ids == full.new_ids, budget.label
        assert gen.kv_keys == full.kv_keys, budget.label


def test_eviction_choices_by_hand():
    positions = torch.tensor([[5, 3, 9, 0], [0, 1, 7, 9]])
    # window: the oldest key of each KV head
    assert get_policy("window").decode_victim(positions, None, 10, Budget("window", keys=4), 4).tolist() == [3, 0]
    # sink_window with 2 sinks: the oldest key that is not position 0 or 1
    sw = Budget.of("sink_window", keys=4, sinks=2)
    assert sw.policy.decode_victim(positions, None, 10, sw, 4).tolist() == [1, 2]
    # h2o with a cache of 4: the 2 most recent positions (9, 10 for the key about to join at 10) are safe;
    # among the older ones, the least accumulated attention leaves
    acc = torch.tensor([[0.5, 0.1, 0.0, 0.3], [0.2, 0.9, 0.05, 0.01]])
    h2o = get_policy("h2o").decode_victim(positions, acc, 10, Budget("h2o", keys=4), 4)
    assert h2o.tolist() == [1, 2]  # position 3 (0.1) and 7 (0.05): position 9 has less but is recent


def test_first_divergence():
    assert first_divergence([1, 2, 3], [1, 2, 4]) == 2
    assert first_divergence([1, 2, 3], [1, 2, 3]) is None
    assert first_divergence([1, 2], [1, 2, 3]) is None  # one stopped early (end of text): no divergence
    assert first_divergence([], [5]) is None


def test_bad_requests_say_why(smollm2, minilm):
    with pytest.raises(TextError, match="causal"):
        generate(minilm, PROMPT, Budget("full"))
    with pytest.raises(TextError, match="at least one"):
        generate(smollm2, PROMPT, Budget("full"), max_new_tokens=0)
    with pytest.raises(TextError, match="no room"):
        generate(smollm2, PROMPT, Budget("full"), max_new_tokens=40, max_tokens=40)
    with pytest.raises(BudgetError, match="topp"):
        generate(smollm2, PROMPT, Budget("topp", keys=4))


def test_side_by_side_gives_the_same_continuations(smollm2, two_cores, monkeypatch):
    budgets = [Budget("full"), Budget.of("sink_window", keys=8, sinks=2)]
    threads = []
    import attnviz.generate as g

    one = g.generate

    def recording(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return one(*args, **kwargs)

    monkeypatch.setattr(g, "generate", recording)
    pair = generate_each(smollm2, PROMPT, budgets, max_new_tokens=NEW)
    assert all(name.startswith("attnviz-pass") for name in threads) and len(threads) == 2
    monkeypatch.setattr(g, "generate", one)
    for got, budget in zip(pair, budgets, strict=True):
        alone = generate(smollm2, PROMPT, budget, max_new_tokens=NEW)
        assert (got.budget, got.new_ids, got.kv_keys) == (budget, alone.new_ids, alone.kv_keys)


@pytest.mark.parametrize("budget", [Budget("h2o", keys=8), Budget.of("sink_window", keys=8, sinks=2),
                                    Budget("topk", keys=6)], ids=lambda b: b.label)
def test_one_more_token_costs_one_decode_step(smollm2, budget, monkeypatch):
    """Resuming 40 tokens to 41 runs the trunk once (evicting policies carry their cache, positions and scores
    along) and gives the tokens and cache sizes of 41 from scratch; the 40 it resumed from stay as they were."""
    import attnviz.generate as g

    forty = generate(smollm2, PROMPT, budget, max_new_tokens=40)
    assert len(forty.new_ids) == 40 and not forty.ended and forty.steps_run == 39
    kept = (list(forty.new_ids), list(forty.kv_keys), forty.state)
    calls = []
    trunk = g.run_trunk
    monkeypatch.setattr(g, "run_trunk", lambda *a, **k: calls.append(a[1].shape) or trunk(*a, **k))
    more = generate(smollm2, PROMPT, budget, max_new_tokens=41, resume=forty)
    assert calls == [(1, 1)] and more.steps_run == 1  # one decode step, one token fed, no prompt pass
    assert (forty.new_ids, forty.kv_keys, forty.state) == kept  # the continuation resumed from is unchanged
    monkeypatch.setattr(g, "run_trunk", trunk)
    scratch = generate(smollm2, PROMPT, budget, max_new_tokens=41)
    assert more.new_ids == scratch.new_ids
    assert more.kv_keys == scratch.kv_keys
    assert more.elapsed[:40] == forty.elapsed and more.seconds >= forty.seconds
    # fewer tokens: a prefix, no step at all; and the same continuation resumed twice agrees with itself
    assert generate(smollm2, PROMPT, budget, max_new_tokens=30, resume=more).new_ids == scratch.new_ids[:30]
    again = generate(smollm2, PROMPT, budget, max_new_tokens=42, resume=forty)
    assert again.new_ids[:41] == scratch.new_ids and again.steps_run == 2


def test_a_continuation_that_ended_is_not_continued(smollm2):
    alice = "Alice gave Bob her umbrella because she knew it would rain in Paris."
    gen = generate(smollm2, alice, Budget("topp", ratio=0.9), max_new_tokens=12)
    assert gen.ended and len(gen.new_ids) == 9 and gen.new_ids[-1] == smollm2.tokenizer.eos_token_id
    longer = generate(smollm2, alice, Budget("topp", ratio=0.9), max_new_tokens=40, resume=gen)
    assert longer.new_ids == gen.new_ids and longer.ended and longer.steps_run == 0
    cut = gen.prefix(5)
    assert cut.new_ids == gen.new_ids[:5] and not cut.ended and cut.state is None


def test_resuming_needs_the_same_budget_and_prompt(smollm2):
    gen = generate(smollm2, PROMPT, Budget("topk", keys=6), max_new_tokens=3)
    with pytest.raises(ValueError, match="cannot resume"):
        generate(smollm2, PROMPT, Budget("topk", keys=7), max_new_tokens=4, resume=gen)
    # a longer request that cuts the prompt shorter starts afresh (reading the shorter prompt)
    n = len(gen.prompt_ids)
    cut = generate(smollm2, PROMPT, Budget("topk", keys=6), max_new_tokens=4, max_tokens=n + 3, resume=gen)
    assert cut.truncated_from == n and len(cut.prompt_ids) == n - 1 and cut.steps_run == 3


def test_a_kept_decode_state_is_small(smollm2):
    """The bound ui.cached relies on: keys x 2 x 64 x 4 bytes per layer and KV head (+ eviction bookkeeping)."""
    full = generate(smollm2, PROMPT, Budget("full"), max_new_tokens=5)
    assert full.state.nbytes == full.kv_keys[-1] * 2 * 64 * 4 == full.kv_bytes[-1]
    h2o = generate(smollm2, PROMPT, Budget("h2o", keys=8), max_new_tokens=5)
    assert h2o.state.nbytes == 8 * L * HKV * (2 * 64 * 4 + 8 + 4)  # + an int64 position and a float32 score each
