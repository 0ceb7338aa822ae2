"""Each press on small hand-checked views: what it scores and keeps."""

import pytest
import torch

from attnviz.budget import BudgetError
from attnviz.presses import PRESSES, PressView, get_press, kept_count, rotate_half
from attnviz.presses.expected_attention import mean_rotation
from attnviz.presses.pyramidkv import layer_budget


def _no_rotation(positions):
    n = len(positions)
    return torch.ones(n, 4), torch.zeros(n, 4)


def view(c=8, kv_heads=1, group=2, d=4, seed=0, layer=0, layers=4, rotary=_no_rotation):
    g = torch.Generator().manual_seed(seed)
    keys = torch.randn(kv_heads, c, d, generator=g)
    return PressView(layer=layer, layers=layers, keys=keys, values=torch.randn(kv_heads, c, d, generator=g),
                     queries=torch.randn(kv_heads * group, c, d, generator=g), scaling=d ** -0.5, rotary=rotary)


def test_kept_count_is_kvpress_count_at_least_one():
    assert kept_count(200, 0.5) == 100 and kept_count(200, 0.75) == 50 and kept_count(10, 0.99) == 1
    assert kept_count(7, 0.5) == 3  # int(), not round()


def test_streaming_llm_keeps_sinks_and_the_most_recent():
    v = view(c=10)
    keep = get_press("streaming_llm", n_sink=2).keep(v, 0.5)
    assert torch.nonzero(keep[0]).flatten().tolist() == [0, 1, 7, 8, 9]


def test_knorm_keeps_the_smallest_keys():
    v = view(c=6)
    norms = v.keys.norm(dim=-1)[0]
    keep = get_press("knorm").keep(v, 0.5)
    assert set(torch.nonzero(keep[0]).flatten().tolist()) == set(norms.argsort()[:3].tolist())


def test_snapkv_votes_by_hand():
    """Window 2, kernel 1 (no smoothing): the last two queries' mean attention; the window always kept."""
    v = view(c=6, group=2)
    keep = get_press("snapkv", window_size=2, kernel_size=1).keep(v, 0.5)  # 3 kept: the window + the best one
    att = v.attention()[:, -2:, :4]  # (q_heads, 2, 4) rows of the full causal softmax
    votes = att.mean(1).mean(0)  # mean over window queries, then over the KV head's two query heads
    best = int(votes.argmax())
    assert torch.nonzero(keep[0]).flatten().tolist() == sorted([best, 4, 5])


def test_snapkv_smoothing_pads_with_zeros():
    v = view(c=9)
    scores = get_press("snapkv", window_size=3, kernel_size=3).score(v)[0]
    raw = v.attention()[:, -3:, :6].mean(1).mean(0)
    assert float(scores[0]) == pytest.approx(float(raw[:2].sum()) / 3)  # avg_pool1d counts the padding
    assert float(scores[2]) == pytest.approx(float(raw[1:4].mean()))
    assert bool((scores[6:] > scores[:6].max()).all())


def test_tova_keeps_the_same_positions_in_every_kv_head():
    v = view(c=7, kv_heads=2, group=2)
    keep = get_press("tova").keep(v, 0.5)
    assert torch.equal(keep[0], keep[1]) and bool(keep[0, -1])
    last = v.window_attention(1)[:, 0, :-1].mean(0)
    assert set(torch.nonzero(keep[0, :-1]).flatten().tolist()) == set(last.argsort(descending=True)[:2].tolist())


def test_observed_attention_divides_by_the_queries_that_saw_each_key():
    v = view(c=5, group=1)
    scores = get_press("observed_attention").score(v)[0]
    att = v.attention()[0]
    assert float(scores[4]) == pytest.approx(float(att[4, 4]))  # only the last query sees the last key
    assert float(scores[0]) == pytest.approx(float(att[:, 0].mean()))


def test_random_draws_the_same_numbers_in_every_layer():
    a = get_press("random", seed=3).keep(view(c=20, layer=0), 0.5)
    b = get_press("random", seed=3).keep(view(c=20, layer=5, seed=9), 0.5)
    assert torch.equal(a, b) and int(a.sum()) == 10


def test_expected_attention_without_rotation_or_covariance_is_the_mean_query():
    v = view(c=8, group=1)
    press = get_press("expected_attention", n_sink=1, use_covariance=False, use_vnorm=False)
    scores = press.score(v)[0]
    mu = v.queries[0, 1:].mean(0)
    expect = torch.softmax(v.keys[0, 1:] @ mu / 2.0, dim=-1)  # d = 4: √d = 2
    assert torch.allclose(scores[1:], expect, atol=1e-6) and float(scores[0]) > float(expect.max())


def test_mean_rotation_matches_rotating_each_position():
    inv = 1.0 / (10000 ** (torch.arange(0, 4, 2).float() / 4))

    def rotary(positions):
        f = positions.float().view(-1, 1) * inv
        emb = torch.cat([f, f], -1)
        return emb.cos(), emb.sin()

    v = view(rotary=rotary)
    x = torch.randn(4)
    rot = mean_rotation(v, 3, 5)
    cos, sin = rotary(torch.arange(3, 8))
    each = x * cos + rotate_half(x.expand(5, 4)) * sin
    assert torch.allclose(rot @ x, each.mean(0), atol=1e-6)


def test_pyramid_budget_by_hand_and_its_fallback():
    # C=200, r=0.5, w=16, beta=20: max 184 at the bottom, 16 at the top, mean 100
    budgets = [layer_budget(200, 0.5, 16, 20, layer, 30) for layer in range(30)]
    assert budgets[0] == 184 and budgets[-1] == 16 and sum(budgets) / 30 == pytest.approx(100, abs=0.5)
    assert layer_budget(100, 0.5, 64, 20, 3, 30) == 50  # the pyramid does not fit: uniform, round(C·(1 − r))


def test_adakv_pools_heads_with_a_safeguard():
    v = view(c=10, kv_heads=2, group=1)
    press = get_press("adakv", scorer="knorm", alpha_safeguard=0.5)
    keep = press.keep(v, 0.6)  # 4 kept per head on average, 8 in all; each head sure of its best 2
    assert int(keep.sum()) == 8
    scores = -v.keys.norm(dim=-1)
    for h in range(2):
        assert bool(keep[h, scores[h].argsort(descending=True)[:2]].all())


def test_ratio_zero_keeps_everything_for_every_press():
    v = view(c=80, kv_heads=2, group=2)
    for name in PRESSES:
        assert bool(get_press(name).keep(v, 0.0).all()), name


@pytest.mark.parametrize("name,context,words", [("snapkv", 64, "window_size=64"), ("streaming_llm", 4, "n_sink=4"),
                                                ("pyramidkv", 10, "window_size=64"), ("adakv", 30, "window_size=64")])
def test_a_context_too_short_is_one_line(name, context, words):
    with pytest.raises(BudgetError, match=words) as err:
        get_press(name).validate(context)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["snapkv", "pyramidkv"])
def test_an_even_pooling_kernel_is_refused(name):
    """Found by tests/fuzz: kernel_size=66 (even) made average pooling one position longer than the context, and
    scoring ended in a RuntimeError from a tensor shape; an even kernel is now refused before any work."""
    with pytest.raises(BudgetError, match="kernel_size must be odd"):
        get_press(name, window_size=4, kernel_size=66).validate(40)
    get_press(name, window_size=4, kernel_size=7).validate(40)
