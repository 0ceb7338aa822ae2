"""``pyramid``: the depth schedule, checked by hand."""

import torch

from attnviz.allocators import Setting, get_allocator, pyramid_keys
from attnviz.budget import Budget


def test_schedule_by_hand():
    # K=8, L=4, s=0.5: 8·(1.5, 1.1667, 0.8333, 0.5) = 12, 9.33, 6.67, 4 -> largest remainders -> 12, 9, 7, 4
    assert pyramid_keys(8, 4, 0.5) == (12, 9, 7, 4)
    assert pyramid_keys(8, 4, 0.0) == (8, 8, 8, 8)
    assert pyramid_keys(8, 4, -0.5) == (4, 7, 9, 12)
    assert pyramid_keys(5, 1, 0.5) == (5,)


def test_sum_is_exact_and_every_layer_keeps_one():
    for keys in (1, 2, 3, 7, 32):
        for layers in (2, 6, 30):
            for slope in (-0.99, -0.3, 0.5, 0.99):
                got = pyramid_keys(keys, layers, slope)
                assert sum(got) == layers * keys and min(got) >= 1


def test_plan_sets_layer_keys():
    s = Setting(layers=4, q_heads=2, kv_heads=1, causal=True, row_keys=torch.arange(1, 33))
    b = Budget("topk", keys=8, allocator=get_allocator("pyramid"))
    planned = b.allocator.plan(b, s)
    assert planned.layer_keys == (12, 9, 7, 4) and planned.plan == {"layer_keys": [12, 9, 7, 4]}
    assert planned.for_layer(2).keys == 7 and planned == Budget("topk", keys=8, allocator="pyramid",
                                                                 layer_keys=(12, 9, 7, 4))
