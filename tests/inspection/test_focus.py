"""Where one query looks under a budget vs with full attention (the start page's caption)."""

import numpy as np
import pytest
import torch

from attnviz.inspection.focus import find_token, focus_of

FULL = np.array([[1.0, 0.0, 0.0], [0.4, 0.6, 0.0], [0.2, 0.5, 0.3]])


def test_same_focus_and_prediction():
    f = focus_of(FULL, FULL, 2, top1=[5, 6, 7], full_top1=[5, 6, 7])
    assert (f.key, f.full_key, f.moved, f.prediction_changed) == (1, 1, False, False)
    assert f.weight == pytest.approx(0.5)


def test_focus_moved_and_prediction_changed():
    budget = np.array([[1.0, 0.0, 0.0], [0.4, 0.6, 0.0], [1.0, 0.0, 0.0]], dtype=np.float16)
    f = focus_of(budget, FULL, 2, top1=torch.tensor([5, 6, 9]), full_top1=torch.tensor([5, 6, 7]))
    assert (f.key, f.weight, f.full_key, f.full_weight) == (0, 1.0, 1, 0.5)
    assert f.moved and f.prediction_changed


def test_no_prediction_and_bad_input():
    assert focus_of(FULL, FULL, 0).prediction_changed is None
    with pytest.raises(ValueError, match="outside"):
        focus_of(FULL, FULL, 3)
    with pytest.raises(ValueError, match="shape"):
        focus_of(FULL[:2], FULL, 0)


def test_find_token():
    assert find_token(["The", "␣trophy", "␣it", "␣was"], "it") == 2
    assert find_token(["The", "␣trophy"], "it") is None
