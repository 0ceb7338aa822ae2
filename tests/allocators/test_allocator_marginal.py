"""``marginal``: convex value curves and water-filling, checked by hand."""

import numpy as np
import pytest
import torch

from attnviz.allocators.marginal import calibration_rows, convex_curve, water_fill


def test_convex_curve_is_the_lower_hull_and_never_rises():
    keys = np.array([1, 2, 4, 8, 16.0])
    kl = np.array([1.0, 0.9, 0.2, 0.25, 0.0])  # a bump at 8 and a shallow first step
    got = convex_curve(keys, kl)
    # running minimum: 1, .9, .2, .2, 0; lower hull through (1,1), (4,.2), (16,0)
    assert got.tolist() == pytest.approx([1.0, 1 - 0.8 / 3, 0.2, 0.2 - 0.2 * 4 / 12, 0.0])
    slopes = np.diff(got) / np.diff(keys)
    assert bool((slopes <= 1e-12).all()) and bool((np.diff(slopes) >= -1e-12).all())  # falls, ever less steeply


def test_water_fill_gives_keys_where_they_are_worth_most():
    keys = np.array([1.0, 2, 4, 8])
    curves = np.array([[1.0, 0.5, 0.25, 0.0],   # steep layer
                       [0.1, 0.08, 0.04, 0.0]])  # flat layer
    rows = torch.full((4,), 8)  # an encoder-like text: every row sees 8 keys, so a key costs 4 pairs
    counts, level = water_fill(keys, curves, rows, heads=1, target_pairs=2 * 4 * 4)  # uniform K=4
    assert sum(counts) == 8 and counts[0] > counts[1]
    # the steep layer's falls per key: .5, .125, .125, .0625, ...; the flat one's: .02, .02, .01 ...
    assert counts == (7, 1) and level == pytest.approx(0.0625)


def test_water_fill_spends_the_pairs_of_a_causal_text():
    keys = np.array([1.0, 2, 4, 8, 16, 32])
    rng = np.random.default_rng(0)
    curves = np.sort(rng.random((6, 6)), axis=1)[:, ::-1] * np.array([1, 1, 1, 1, 1, 0])
    curves = np.stack([convex_curve(keys, c) for c in curves])
    rows = torch.arange(1, 33)
    target = int(torch.clamp(rows, max=8).sum()) * 6 * 2
    counts, _ = water_fill(keys, curves, rows, heads=2, target_pairs=target)
    spent = sum(int(torch.clamp(rows, max=k).sum()) for k in counts) * 2
    assert abs(spent - target) <= 32 * 2


def test_calibration_rows():
    assert calibration_rows(128) == 16 and calibration_rows(40) == 8 and calibration_rows(5) == 4
    assert calibration_rows(128, 0.5) == 64 and calibration_rows(128, 1.0) == 128
