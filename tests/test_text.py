"""Tests for :func:`attnviz.text.encode` with the bundled models' real tokenizers."""

from __future__ import annotations

import pytest

from attnviz.bench import bench_text
from attnviz.measure import encode_for
from attnviz.text import DEFAULT_MAX_TOKENS, TextError, encode

SHORT = "The lighthouse keeper climbed the spiral stairs every evening at dusk."


def _ids(tokenizer, text):
    return tokenizer(text)["input_ids"]


@pytest.mark.parametrize("text", ["", " ", "   \n\t  ", None])
def test_empty_or_whitespace_text_raises(smollm2, minilm, text):
    for lm in (smollm2, minilm):
        with pytest.raises(TextError, match="empty"):
            encode(lm.tokenizer, text)


def test_too_few_tokens_raises(smollm2):
    assert len(_ids(smollm2.tokenizer, "hi")) == 1
    with pytest.raises(TextError, match="at least 2"):
        encode(smollm2.tokenizer, "hi", min_tokens=2)
    # one token is enough when only one is needed
    assert encode(smollm2.tokenizer, "hi", min_tokens=1).n_tokens == 1


def test_causal_model_needs_two_tokens(smollm2, minilm):
    with pytest.raises(TextError):
        encode_for(smollm2, "hi")
    # the encoder adds [CLS] and [SEP], so a single word is fine
    assert encode_for(minilm, "hi").n_tokens == 3


def test_cap_below_one_raises(smollm2):
    with pytest.raises(TextError):
        encode(smollm2.tokenizer, SHORT, max_tokens=0)


def test_short_text_not_truncated_uses_default_special_tokens(smollm2, minilm):
    for lm in (smollm2, minilm):
        enc = encode(lm.tokenizer, SHORT)
        assert enc.truncated_from is None
        assert enc.ids.shape == (1, len(_ids(lm.tokenizer, SHORT)))
        assert enc.ids[0].tolist() == _ids(lm.tokenizer, SHORT)
        assert enc.n_tokens == enc.ids.shape[1]
    bert = encode(minilm.tokenizer, SHORT).ids[0].tolist()
    assert bert[0] == minilm.tokenizer.cls_token_id and bert[-1] == minilm.tokenizer.sep_token_id


def test_causal_truncation_keeps_the_first_tokens(smollm2):
    full = _ids(smollm2.tokenizer, SHORT)
    enc = encode(smollm2.tokenizer, SHORT, max_tokens=5)
    assert enc.n_tokens == 5
    assert enc.truncated_from == len(full)
    assert enc.ids[0].tolist() == full[:5]


def test_bert_truncation_keeps_trailing_sep(minilm):
    tok = minilm.tokenizer
    full = _ids(tok, SHORT)
    assert len(full) > 6
    enc = encode(tok, SHORT, max_tokens=6)
    ids = enc.ids[0].tolist()
    assert enc.n_tokens == 6
    assert enc.truncated_from == len(full)
    assert ids[-1] == tok.sep_token_id
    assert ids[:5] == full[:5]  # [CLS] and the first four word pieces
    assert ids.count(tok.sep_token_id) == 1


def test_cap_never_above_model_limit(minilm, smollm2):
    text = bench_text()
    n_bert = len(_ids(minilm.tokenizer, text))
    assert n_bert > 512
    enc = encode(minilm.tokenizer, text, max_tokens=5000, model_limit=512)
    assert enc.n_tokens == 512
    assert enc.truncated_from == n_bert
    assert enc.ids[0, -1].item() == minilm.tokenizer.sep_token_id
    # through the model wrapper: MiniLM's own limit is 512 positions
    assert minilm.max_positions == 512
    assert encode_for(minilm, text, max_tokens=5000).n_tokens == 512
    # a smaller user cap wins over the model limit
    assert encode(minilm.tokenizer, text, max_tokens=100, model_limit=512).n_tokens == 100
    # SmolLM2 (8192 positions): the default cap of 1024 tokens applies
    n_smol = len(_ids(smollm2.tokenizer, text))
    assert n_smol > DEFAULT_MAX_TOKENS
    enc = encode_for(smollm2, text)
    assert enc.n_tokens == min(DEFAULT_MAX_TOKENS, smollm2.max_positions)
    assert enc.truncated_from == n_smol


def test_text_exactly_at_cap_is_not_truncated(smollm2):
    n = len(_ids(smollm2.tokenizer, SHORT))
    enc = encode(smollm2.tokenizer, SHORT, max_tokens=n)
    assert enc.truncated_from is None and enc.n_tokens == n


def test_a_cap_below_the_tokens_a_causal_model_needs_is_refused(smollm2):
    """Found by tests/fuzz: ``--max-tokens 1`` cut a long text to one token, leaving a causal model no
    prediction to score (a ValueError from torch.cat deep in the sweep)."""
    with pytest.raises(TextError, match="at least 2"):
        encode_for(smollm2, "The lighthouse keeper climbed the stairs.", 1)
    assert encode_for(smollm2, "The lighthouse keeper climbed the stairs.", 2).n_tokens == 2
