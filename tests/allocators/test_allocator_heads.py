"""``heads``: a layer's heads pool each row's keys, checked by hand."""

import torch

from attnviz.allocators import pooled_counts


def _probs():
    # one query row, four keys, two heads
    return torch.tensor([[[0.70, 0.10, 0.12, 0.08]],
                         [[0.40, 0.30, 0.20, 0.10]]])


def test_pool_without_floor_by_hand():
    allowed = torch.ones(1, 1, 4, dtype=torch.bool)
    # 2·2 = 4 best of all eight: 0.70 (h0), 0.40, 0.30, 0.20 (h1)
    got = pooled_counts(torch.tensor([[2]]), _probs(), allowed, alpha=0.0)
    assert got.tolist() == [[1], [3]]


def test_floor_guarantees_each_head_its_share():
    allowed = torch.ones(1, 1, 4, dtype=torch.bool)
    # α=1: each head first keeps its own best ⌈1·2⌉ = 2, which spends the whole 4
    assert pooled_counts(torch.tensor([[2]]), _probs(), allowed, alpha=1.0).tolist() == [[2], [2]]
    # K=3, α=0.5: each keeps ⌈1.5⌉ = 2 first (0.70, 0.12 | 0.40, 0.30); the other 2 of 6: 0.20 (h1), 0.10 (h0 or h1)
    got = pooled_counts(torch.tensor([[3]]), _probs(), allowed, alpha=0.5)
    assert got.sum().item() == 6 and got[1, 0].item() >= 3 and got[0, 0].item() >= 2


def test_rows_keep_their_totals_and_forbidden_keys_never_count():
    torch.manual_seed(0)
    n, h = 6, 3
    allowed = torch.ones(n, n, dtype=torch.bool).tril().unsqueeze(0)
    probs = torch.softmax(torch.randn(h, n, n).masked_fill(~allowed, float("-inf")), -1)
    base = torch.clamp(allowed.sum(-1), max=2)  # (1, n)
    got = pooled_counts(base, probs, allowed, alpha=0.2)
    assert torch.equal(got.sum(0), base[0] * h)  # each row spends exactly H·K_row
    assert bool((got <= allowed.sum(-1)).all())  # never more than a row may see
    assert got[:, 0].tolist() == [1, 1, 1] and got[:, 1].tolist() == [2, 2, 2]  # short rows keep everything
