"""ui.cached's server-wide stores: row stores bounded in rows with keys that do not grow with the text; no lock of
a continuation left behind by a failed request."""

import sys
from dataclasses import dataclass, field

import pytest

import ui.cached as cached
from attnviz.budget import Budget


@dataclass(frozen=True)
class FakeRow:
    budget: Budget
    keep: dict = field(default_factory=dict)
    weights: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"policy": self.budget.policy.name}


@pytest.fixture()
def no_model(monkeypatch):
    """Rows without a model: each budget gives a FakeRow; the calls are counted."""
    calls = []

    def fake_pass(lm, ref, budgets, progress=None):
        calls.append(len(budgets))
        return [FakeRow(b) for b in budgets]

    monkeypatch.setattr(cached, "budget_pass", fake_pass)
    monkeypatch.setattr(cached, "get_model", lambda name: None)
    cached._finished_sweeps.clear()
    cached._spent_rows.clear()
    return calls


def _key_bytes(store) -> int:
    return sum(sys.getsizeof(part) for key in store for part in key)


@pytest.mark.parametrize("which", ["swept", "spent"])
def test_a_long_text_is_not_kept_in_the_keys(no_model, which):
    """Keys hold a digest of the text: 1,024 kept rows of a 1 MB text each would otherwise hold a GB."""
    text = "word " * 200_000
    budgets = [Budget("topk", keys=k) for k in (1, 2, 3)]
    if which == "swept":
        cached.swept_rows("smollm2", text, 1024, None, budgets, None)
        store, _ = cached._finished_sweeps()
    else:
        cached.spent_rows("smollm2", text, 1024, None, budgets)
        store, _ = cached._spent_rows()
    assert len(store) == 3 and _key_bytes(store) < 3 * 1000
    # ... and still tell texts apart: the same text finds its rows, another text runs its own.
    again = cached.swept_rows if which == "swept" else cached.spent_rows
    args = (None,) if which == "swept" else ()
    again("smollm2", "word " * 200_000, 1024, None, budgets, *args)
    assert no_model == [3]
    again("smollm2", text + ".", 1024, None, budgets, *args)
    assert no_model == [3, 3]


def test_the_row_stores_keep_at_most_their_bound(no_model, monkeypatch):
    monkeypatch.setattr(cached, "SWEPT_ROWS_KEPT", 5)
    monkeypatch.setattr(cached, "SPENT_ROWS_KEPT", 4)
    for k in range(1, 11):
        cached.swept_rows("smollm2", "a text", 256, None, [Budget("topk", keys=k)], None)
        cached.spent_rows("smollm2", "a text", 256, None, [Budget("topk", keys=k)])
    assert len(cached._finished_sweeps()[0]) == 5 and len(cached._spent_rows()[0]) == 4


def test_a_failed_generation_leaves_no_lock_behind(monkeypatch):
    """Each continuation's lock is keyed by its prompt: a request that fails (bad input) must not leave its locks
    (and prompts) in the server-wide store for good."""

    def refuse(*args, **kwargs):
        raise ValueError("the text is empty")

    monkeypatch.setattr(cached, "get_model", lambda name: None)
    monkeypatch.setattr(cached, "generate_each", refuse)
    cached._continuations.clear()
    for i in range(5):
        with pytest.raises(ValueError):
            cached.get_continuations("smollm2", f"prompt {i} " * 1000, Budget("topk", keys=4), 3, 256)
    store = cached._continuations()
    assert not store.locks and not store.kept
