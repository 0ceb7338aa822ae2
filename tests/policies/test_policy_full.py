"""``full``: every key the model's own mask allows."""

import torch
from policy_helpers import causal, encoder, keep_mask, mat

from attnviz.budget import Budget
from attnviz.policies import LayerView, get_policy


def test_full_causal_keeps_every_allowed_key():
    scores = torch.randn(2, 4, 4)
    keep = keep_mask("full", scores, causal(4), Budget("full"))
    expected = mat(["1...", "11..", "111.", "1111"])
    assert torch.equal(keep, expected.expand(2, 4, 4))


def test_full_encoder_keeps_everything():
    keep = keep_mask("full", torch.randn(3, 3, 3), encoder(3), Budget("full"), causal_model=False)
    assert keep.all()


def test_full_with_padding_keeps_only_unpadded_keys():
    # Left padding of one token: key 0 is padding; the padded query row 0 sees nothing.
    allowed = causal(4).clone()
    allowed[..., 0] = False
    keep = keep_mask("full", torch.randn(1, 4, 4), allowed, Budget("full"))
    assert torch.equal(keep[0], mat(["....", ".1..", ".11.", ".111"]))


def test_full_returns_none_meaning_all_allowed():
    # The documented shortcut: None = every allowed key (the run then uses the model's mask unchanged).
    assert get_policy("full").keep(torch.randn(1, 3, 3), causal(3), Budget("full"),
                                   LayerView(0, True, 1)) is None
