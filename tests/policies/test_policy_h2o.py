"""``h2o``: a simulated Heavy-Hitter-Oracle KV cache of K keys per KV head.

Key i joins the cache just before query i attends; the cache keeps the
max(1, K // 2) most recent keys (key i included) and fills the other slots with
the cached keys of largest accumulated attention (sum over earlier queries and
over the query heads sharing the KV head of the weights they actually received,
i.e. the softmax over the cached keys only).  An evicted key never returns.
"""

from __future__ import annotations

import math

import pytest
import torch
from policy_helpers import causal, keep_mask, mat

from attnviz.budget import Budget, BudgetError
from attnviz.engine.run import BudgetRun
from attnviz.policies import get_policy

HOT = 30.0  # a target key's score; every other cached key gets 0 -> weight ~e^-30, negligible
FUTURE = 40.0  # scores of keys a query may not see (never used by a correct simulation)


def _story(n: int, rows: list[list[int | tuple[int, ...]]]) -> torch.Tensor:
    """Scores ``(q_heads, n, n)``: ``rows[i][h]`` is the key (or keys, equally) head h attends to in row i."""
    hq = len(rows[0])
    s = torch.zeros(hq, n, n, dtype=torch.float64)
    s.masked_fill_(~causal(n)[0], FUTURE)
    for i, per_head in enumerate(rows):
        for h, target in enumerate(per_head):
            for j in target if isinstance(target, tuple) else (target,):
                s[h, i, j] = HOT
    return s


def _reference_h2o(scores: torch.Tensor, k: int, group: int) -> list[list[list[bool]]]:
    """Independent plain-Python simulation of the cache, one KV head at a time."""
    rows = scores.tolist()
    hq, n = len(rows), len(rows[0])
    recent = max(1, k // 2)
    keep = [[[False] * n for _ in range(n)] for _ in range(hq)]
    for kv in range(hq // group):
        heads = range(kv * group, (kv + 1) * group)
        cache: list[int] = []
        acc = [0.0] * n
        for i in range(n):
            cache.append(i)
            if len(cache) > k:
                protected = set(range(i - recent + 1, i + 1))
                victim = min((j for j in cache if j not in protected), key=lambda j: acc[j])
                cache.remove(victim)
            for h in heads:
                top = max(rows[h][i][j] for j in cache)
                e = {j: math.exp(rows[h][i][j] - top) for j in cache}
                z = sum(e.values())
                for j in cache:
                    acc[j] += e[j] / z
                    keep[h][i][j] = True
    return keep


def _h2o(scores, k=None, ratio=None, group=1):
    n = scores.shape[-1]
    return keep_mask("h2o", scores, causal(n), Budget("h2o", keys=k, ratio=ratio), group=group)


# --------------------------------------------------------------------------- hand-simulated stories


# Two KV heads (query heads 0,1 -> KV 0; 2,3 -> KV 1), n = 6, K = 3 (1 recent slot + 2 heavy slots).
STORY_K3 = [
    # h0, h1 (KV 0)   h2, h3 (KV 1)
    [0, 0, 0, 0],
    [0, 1, 1, (0, 1)],
    [0, 0, 2, 2],
    [3, 3, 3, 2],
    [0, 4, 2, 4],
    [1, 2, 1, 3],  # row 5 attends to evicted keys only: it must change nothing
]


def test_h2o_hand_story_k3_two_kv_heads():
    # KV 0 accumulated attention: after rows 0-2: key0 = 2+1+2 = 5, key1 = 1, key2 ~ 0
    #   step 3: evict argmin{0:5, 1:1, 2:0} = 2 -> cache {0,1,3}; row 3 adds key3 += 2
    #   step 4: evict argmin{0:5, 1:1, 3:2} = 1 -> cache {0,3,4}; row 4 adds key0 += 1, key4 += 1
    #   step 5: evict argmin{0:6, 3:2, 4:1} = 4 -> cache {0,3,5}
    kv0 = mat(["1.....", "11....", "111...", "11.1..", "1..11.", "1..1.1"])
    # KV 1: after rows 0-2: key0 = 2 + 0.5 = 2.5, key1 = 1 + 0.5 = 1.5, key2 = 2
    #   step 3: evict 1 -> cache {0,2,3}; row 3: key3 += 1, key2 += 1 (= 3)
    #   step 4: evict argmin{0:2.5, 2:3, 3:1} = 3 -> cache {0,2,4}; row 4: key2 += 1, key4 += 1
    #   step 5: evict argmin{0:2.5, 2:4, 4:1} = 4 -> cache {0,2,5}
    kv1 = mat(["1.....", "11....", "111...", "1.11..", "1.1.1.", "1.1..1"])
    scores = _story(6, STORY_K3)
    keep = _h2o(scores, k=3, group=2)
    expected = torch.stack([kv0, kv0, kv1, kv1])
    assert torch.equal(keep, expected)
    # The independent simulation agrees with the hand reasoning.
    assert _reference_h2o(scores, 3, 2) == expected.tolist()


# One KV head shared by 2 query heads, n = 7, K = 4 (2 recent slots + 2 heavy slots): key 0 gets evicted.
STORY_K4 = [
    [0, 0],
    [1, 1],
    [1, 2],
    [2, 2],
    [3, 3],
    [4, 5],
    [3, 4],
]


def test_h2o_hand_story_k4_evicts_key_zero_for_good():
    # After rows 0-3: key0 = 2, key1 = 2+1 = 3, key2 = 1+2 = 3, key3 ~ 0
    #   step 4: window {3,4} protected; evict argmin{0:2, 1:3, 2:3} = 0 -> cache {1,2,3,4}; row 4: key3 += 2
    #   step 5: window {4,5}; evict argmin{1:3, 2:3, 3:2} = 3 -> cache {1,2,4,5}; row 5: key4 += 1, key5 += 1
    #   step 6: window {5,6}; evict argmin{1:3, 2:3, 4:1} = 4 -> cache {1,2,5,6}
    expected = mat(["1......", "11.....", "111....", "1111...", ".1111..", ".11.11.", ".11..11"])
    scores = _story(7, STORY_K4)
    # Rows 5 and 6 give evicted keys 0 and 3 by far the largest score: they must not come back.
    scores[:, 5:, 0] = 60.0
    scores[:, 6, 3] = 60.0
    keep = _h2o(scores, k=4, group=2)
    assert torch.equal(keep, expected.expand(2, 7, 7))
    assert _reference_h2o(scores, 4, 2) == expected.expand(2, 7, 7).tolist()


def test_h2o_weights_are_softmax_over_cached_keys_only():
    """Accumulated attention counts the weights actually received (softmax over the cache only).

    n = 6, K = 4 (2 recent + 2 heavy slots), one head; scores are logs of the intended weights.
    In row 4 an evicted key has a huge score: a simulation that took the softmax over every
    earlier key would give it all of row 4's mass and evict key 3 at step 5 instead of key 2.
    """
    lg = math.log
    s = torch.zeros(1, 6, 6, dtype=torch.float64)
    s.masked_fill_(~causal(6)[0], FUTURE)
    s[0, 1, :2] = torch.tensor([lg(0.7), lg(0.3)])  # acc: k0 = 1 + 0.7 = 1.7, k1 = 0.3
    s[0, 2, :3] = torch.tensor([lg(0.2), lg(0.2), lg(0.6)])  # k0 1.9, k1 0.5, k2 0.6
    s[0, 3, :4] = torch.tensor([lg(0.1), lg(0.1), lg(0.3), lg(0.5)])  # k0 2.0, k1 0.6, k2 0.9, k3 0.5
    # step 4: window {3,4}; evict argmin{0:2.0, 1:0.6, 2:0.9} = 1 -> cache {0,2,3,4}
    s[0, 4, :5] = torch.tensor([lg(0.1), 50.0, lg(0.1), lg(0.7), lg(0.1)])
    # row 4 over the cache {0,2,3,4}: weights 0.1, 0.1, 0.7, 0.1 -> k0 2.1, k2 1.0, k3 1.2, k4 0.1
    # step 5: window {4,5}; evict argmin{0:2.1, 2:1.0, 3:1.2} = 2 -> cache {0,3,4,5}
    #   (over all keys, key 1 would take row 4's mass: k2 0.9, k3 0.5 -> key 3 would go instead)
    expected = mat(["1.....", "11....", "111...", "1111..", "1.111.", "1..111"])
    assert torch.equal(_h2o(s, k=4)[0], expected)
    assert _reference_h2o(s, 4, 1)[0] == expected.tolist()


def test_h2o_cache_of_one_is_the_query_itself():
    keep = _h2o(torch.randn(2, 5, 5, dtype=torch.float64), k=1, group=2)
    assert torch.equal(keep, torch.eye(5, dtype=torch.bool).expand(2, 5, 5))


def test_h2o_cache_as_large_as_the_text_is_full_causal():
    scores = torch.randn(2, 5, 5, dtype=torch.float64)
    for k in (5, 9):
        assert torch.equal(_h2o(scores, k=k), causal(5).expand(2, 5, 5))


# --------------------------------------------------------------------------- against the reference


CONFIGS = [
    # (n, K, q_heads, group)
    (6, 3, 4, 2),
    (9, 4, 2, 2),
    (10, 5, 3, 3),
    (8, 2, 2, 1),
    (12, 7, 4, 2),
    (16, 6, 8, 4),
    (11, 3, 1, 1),
]


@pytest.mark.parametrize("n,k,hq,group", CONFIGS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_h2o_matches_independent_simulation(n, k, hq, group, seed):
    scores = torch.randn(hq, n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2
    keep = _h2o(scores, k=k, group=group)
    assert keep.tolist() == _reference_h2o(scores, k, group)


@pytest.mark.parametrize("n,k,hq,group", CONFIGS)
def test_h2o_float32_scores_match_simulation(n, k, hq, group):
    scores = torch.randn(hq, n, n, generator=torch.Generator().manual_seed(9)) * 2
    keep = _h2o(scores, k=k, group=group)
    assert keep.tolist() == _reference_h2o(scores.double(), k, group)


@pytest.mark.parametrize("n,k,hq,group", CONFIGS)
def test_h2o_query_heads_of_one_kv_head_share_the_cache(n, k, hq, group):
    keep = _h2o(torch.randn(hq, n, n, generator=torch.Generator().manual_seed(3)), k=k, group=group)
    for h in range(hq):
        assert torch.equal(keep[h], keep[(h // group) * group])


# --------------------------------------------------------------------------- structural properties


@pytest.mark.parametrize("n,k,hq,group", CONFIGS)
def test_h2o_never_uses_a_later_querys_attention(n, k, hq, group):
    gen = torch.Generator().manual_seed(4)
    base = torch.randn(hq, n, n, generator=gen, dtype=torch.float64)
    keep = _h2o(base, k=k, group=group)
    for i in range(n - 1):
        changed = base.clone()
        changed[:, i + 1:] = torch.randn(hq, n - i - 1, n, generator=gen, dtype=torch.float64) * 5
        other = _h2o(changed, k=k, group=group)
        assert torch.equal(other[:, : i + 1], keep[:, : i + 1]), f"rows <= {i} changed"


@pytest.mark.parametrize("n,k,hq,group", CONFIGS)
@pytest.mark.parametrize("seed", [0, 5])
def test_h2o_evicted_key_never_returns(n, k, hq, group, seed):
    keep = _h2o(torch.randn(hq, n, n, generator=torch.Generator().manual_seed(seed)) * 3, k=k, group=group)
    for h in range(hq):
        for j in range(n):
            col = keep[h, :, j].tolist()
            assert col[:j] == [False] * j  # never before it exists
            assert col[j], f"key {j} is not in its own query's cache"
            first_out = next((r for r in range(j, n) if not col[r]), n)
            assert not any(col[first_out:]), f"head {h}: key {j} was re-admitted after row {first_out}"


@pytest.mark.parametrize("n,k,hq,group", CONFIGS)
def test_h2o_cache_size(n, k, hq, group):
    keep = _h2o(torch.randn(hq, n, n, generator=torch.Generator().manual_seed(6)), k=k, group=group)
    sizes = keep.sum(-1)  # (hq, n)
    expected = [min(i + 1, k) for i in range(n)]  # rows j >= K-1 hold exactly K keys
    for h in range(hq):
        assert sizes[h].tolist() == expected


def test_h2o_keeps_the_most_recent_half():
    n, k = 12, 6  # 3 recent slots
    keep = _h2o(torch.randn(2, n, n, generator=torch.Generator().manual_seed(8)), k=k, group=2)
    for i in range(n):
        for j in range(max(0, i - 2), i + 1):
            assert keep[:, i, j].all(), (i, j)


@pytest.mark.parametrize(
    "n,ratio,k",
    [
        (10, 0.25, 3),  # ceil(2.5) = 3
        (8, 0.25, 2),  # 2 exactly
        (25, 0.28, 7),  # 0.28 * 25 = 7.000000000000001 -> 7
        (10, 0.01, 1),  # at least 1
        (6, 1.0, 6),
    ],
)
def test_h2o_ratio_sets_cache_size(n, ratio, k):
    scores = torch.randn(2, n, n, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    keep = _h2o(scores, ratio=ratio, group=2)
    assert keep.sum(-1)[0].tolist() == [min(i + 1, k) for i in range(n)]
    assert keep.tolist() == _reference_h2o(scores, k, 2)


# --------------------------------------------------------------------------- validation


def test_h2o_is_causal_only():
    with pytest.raises(BudgetError, match="h2o"):
        get_policy("h2o").validate(Budget("h2o", keys=3), False)
    with pytest.raises(BudgetError, match="h2o"):
        BudgetRun([Budget("h2o", keys=3)], causal=False)
    with pytest.raises(BudgetError, match="h2o"):
        BudgetRun([Budget("h2o", ratio=0.5)], causal=False)
    BudgetRun([Budget("h2o", keys=3)], causal=True)  # fine on a decoder


@pytest.mark.parametrize("size", [{"keys": 0}, {"ratio": 0.0}, {"ratio": 1.2}, {}, {"keys": 2, "ratio": 0.5}])
def test_h2o_invalid_sizes(size):
    with pytest.raises(BudgetError):
        get_policy("h2o").validate(Budget("h2o", **size), True)


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("size", [{"keys": 3}, {"ratio": 0.5}])
def test_h2o_padding_matches_the_unpadded_text(side, size):
    """With p padding tokens, the real tokens get the cache they get without padding; padding is never kept.

    Before padding was taken out, padded keys took cache slots and their NaN weights poisoned the
    accumulated attention (and a ratio sized the cache by the padded length).
    """
    from attnviz.policies import LayerView

    n, p = 9, 3
    real = slice(p, n) if side == "left" else slice(0, n - p)
    scores = torch.randn(4, n, n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    allowed = torch.zeros(1, n, n, dtype=torch.bool)
    allowed[:, real, real] = causal(n - p)
    view = LayerView(layer=0, causal=True, group=2)
    budget = Budget("h2o", **size)
    keep = get_policy("h2o").keep(scores, allowed, budget, view)
    k = size.get("keys") or 3  # ratio 0.5 of the 6 real tokens
    assert torch.equal(keep[:, real, real], torch.tensor(_reference_h2o(scores[:, real, real], k, 2)))
    assert keep.sum() == keep[:, real, real].sum()  # nothing kept in a padding row or column
    last, acc = get_policy("h2o").prompt_cache(budget, n, 2, view)  # what decoding continues from
    assert last.shape == (2, n) and not last[:, [i for i in range(n) if i not in range(n)[real]]].any()
    assert acc.shape == (2, n) and torch.isfinite(acc).all()
    assert (acc[:, real].sum(-1) > 0).all() and acc.sum() == acc[:, real].sum()
    many = get_policy("h2o").keep_many(scores.unsqueeze(0), allowed, [budget], view)[0]
    assert torch.equal(many, keep)

