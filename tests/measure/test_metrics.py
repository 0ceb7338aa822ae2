"""Tests for :mod:`attnviz.measure.metrics` on tensors small enough to check by hand.

Every expected value is written out with ``math.log`` / ``math.exp`` from the
probabilities themselves, never by calling the function under test.
"""

from __future__ import annotations

import math

import pytest
import torch
from reference_metrics import causal_quality, perplexity

from attnviz.measure.metrics import KEEP_LOGITS_BYTES, encoder_quality, full_next, next_token_terms

# Three positions, vocabulary of 3.  Rows are probability distributions.
P_FULL = [[0.5, 0.25, 0.25], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]
P_BUDGET = [[0.25, 0.5, 0.25], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]]
TARGETS = [1, 2, 0]


def _logp(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64).log()


def _kl(p, q) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))


def test_perplexity_of_uniform_distribution_is_vocab_size():
    logp = _logp([[1 / 3] * 3] * 4)
    assert perplexity(logp, torch.tensor([0, 1, 2, 0])) == pytest.approx(3.0, rel=1e-12)


def test_perplexity_is_exp_of_mean_nll_of_the_targets():
    # target probabilities: 0.25, 0.5, 0.6
    expected = math.exp(-(math.log(0.25) + math.log(0.5) + math.log(0.6)) / 3)
    assert perplexity(_logp(P_FULL), torch.tensor(TARGETS)) == pytest.approx(expected, rel=1e-12)


def test_perplexity_certain_prediction_is_one():
    logp = _logp([[1.0, 1e-300, 1e-300]])
    assert perplexity(logp, torch.tensor([0])) == pytest.approx(1.0, abs=1e-12)


def test_causal_quality_hand_computed():
    q = causal_quality(_logp(P_FULL), _logp(P_BUDGET), torch.tensor(TARGETS))
    kl0 = 0.5 * math.log(2) + 0.25 * math.log(0.5)  # = 0.25 * ln 2
    kl1 = 0.2 * math.log(2) + 0.3 * math.log(1.5) + 0.5 * math.log(5 / 7)
    assert kl0 == pytest.approx(_kl(P_FULL[0], P_BUDGET[0]))
    assert q["kl"] == pytest.approx((kl0 + kl1 + 0.0) / 3, rel=1e-12)
    # argmax full: 0, 2, 0; budget: 1, 2, 0
    assert q["top1"] == pytest.approx(2 / 3)
    # budget probabilities of the targets 1, 2, 0: 0.5, 0.7, 0.6
    assert q["ppl"] == pytest.approx(math.exp(-(math.log(0.5) + math.log(0.7) + math.log(0.6)) / 3), rel=1e-12)
    # full probabilities of the targets: 0.25, 0.5, 0.6
    assert q["ppl_full"] == pytest.approx(math.exp(-(math.log(0.25) + math.log(0.5) + math.log(0.6)) / 3),
                                          rel=1e-12)


def test_causal_quality_kl_direction_is_full_to_budget():
    """KL(p_full || p_budget), not the reverse (the two differ on this example)."""
    q = causal_quality(_logp(P_FULL[:2]), _logp(P_BUDGET[:2]), torch.tensor(TARGETS[:2]))
    forward = (_kl(P_FULL[0], P_BUDGET[0]) + _kl(P_FULL[1], P_BUDGET[1])) / 2
    reverse = (_kl(P_BUDGET[0], P_FULL[0]) + _kl(P_BUDGET[1], P_FULL[1])) / 2
    assert abs(forward - reverse) > 1e-3
    assert q["kl"] == pytest.approx(forward, rel=1e-12)


def test_causal_quality_identical_inputs():
    lp = _logp(P_FULL)
    q = causal_quality(lp, lp.clone(), torch.tensor(TARGETS))
    assert q["kl"] == 0.0
    assert q["top1"] == 1.0
    assert q["ppl"] == pytest.approx(q["ppl_full"], rel=1e-15)


def test_causal_quality_shared_prefix_counts_as_identical():
    """Position 0 is shared: KL 0, agreeing, and its NLL taken from the full run."""
    q = causal_quality(_logp(P_FULL), _logp(P_BUDGET[1:]), torch.tensor(TARGETS), shared_prefix=1)
    kl1 = _kl(P_FULL[1], P_BUDGET[1])
    assert q["kl"] == pytest.approx(kl1 / 3, rel=1e-12)  # averaged over all 3 positions
    assert q["top1"] == 1.0  # position 0 shared; positions 1, 2 agree
    # position 0 from the full run (0.25), then budget 0.7, 0.6
    assert q["ppl"] == pytest.approx(math.exp(-(math.log(0.25) + math.log(0.7) + math.log(0.6)) / 3), rel=1e-12)
    assert q["ppl_full"] == pytest.approx(math.exp(-(math.log(0.25) + math.log(0.5) + math.log(0.6)) / 3),
                                          rel=1e-12)


def test_causal_quality_shared_prefix_disagreement_after_prefix():
    # budget rows for positions 1, 2 chosen so that position 2 disagrees (argmax 1 instead of 0)
    budget = [[0.1, 0.2, 0.7], [0.2, 0.7, 0.1]]
    q = causal_quality(_logp(P_FULL), _logp(budget), torch.tensor(TARGETS), shared_prefix=1)
    assert q["top1"] == pytest.approx(2 / 3)
    assert q["kl"] == pytest.approx((_kl(P_FULL[1], budget[0]) + _kl(P_FULL[2], budget[1])) / 3, rel=1e-12)
    assert q["ppl"] == pytest.approx(math.exp(-(math.log(0.25) + math.log(0.7) + math.log(0.2)) / 3), rel=1e-12)


def test_causal_quality_whole_text_shared():
    lp = _logp(P_FULL)
    q = causal_quality(lp, lp[3:], torch.tensor(TARGETS), shared_prefix=3)
    assert q["kl"] == 0.0
    assert q["top1"] == 1.0
    assert q["ppl"] == pytest.approx(math.exp(-(math.log(0.25) + math.log(0.5) + math.log(0.6)) / 3), rel=1e-12)
    assert q["ppl"] == pytest.approx(q["ppl_full"], rel=1e-15)


def test_encoder_quality_hand_computed():
    full = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    budget = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    q = encoder_quality(full, budget, 0.5)
    # means: (0.5, 0.5) vs (1, 0): cos = 0.5 / (sqrt(0.5) * 1)
    assert q.cos_embedding == pytest.approx(0.5 / math.sqrt(0.5), rel=1e-6)
    # per token: cos 1 and cos 0
    assert q.cos_tokens == pytest.approx(0.5, rel=1e-6)
    assert q.mass_kept == 0.5 and q.kl is None and q.to_json()["cos_tokens"] == q.cos_tokens


def test_encoder_quality_mean_pool_differs_from_token_mean():
    """Mean pooling first: opposite token errors cancel in the embedding but not per token."""
    full = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    budget = torch.tensor([[1.0, -1.0], [1.0, 1.0]])  # rows swapped: each token orthogonal to its reference
    q = encoder_quality(full, budget, 0.5)
    assert q.cos_embedding == pytest.approx(1.0, abs=1e-6)
    assert q.cos_tokens == pytest.approx(0.0, abs=1e-6)


def test_encoder_quality_is_scale_invariant_and_one_for_identical():
    h = torch.tensor([[0.3, -1.2, 2.0], [1.0, 0.5, -0.5], [-0.7, 0.1, 0.4]])
    q = encoder_quality(h, 3.0 * h, 1.0)
    assert q.cos_embedding == pytest.approx(1.0, abs=1e-6)
    assert q.cos_tokens == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("chunk", [3, 5, 64])
def test_next_token_terms_equal_the_log_softmax_formulas(chunk):
    """Vocabulary chunks, an online log-sum-exp and the KL through hidden states give the textbook values."""
    gen = torch.Generator().manual_seed(chunk)
    rows, d, vocab = 6, 4, 13
    hidden_full = torch.randn(rows, d, generator=gen)
    hidden = hidden_full + 0.3 * torch.randn(rows, d, generator=gen)
    weight = torch.randn(vocab, d, generator=gen) * 3
    bias = torch.randn(vocab, generator=gen)
    logp_full = torch.log_softmax((hidden_full @ weight.T + bias).double(), -1)
    targets = torch.randint(0, vocab, (rows,), generator=gen)
    logits = hidden @ weight.T + bias
    logp = torch.log_softmax(logits.double(), -1)
    full = full_next(hidden_full, weight, bias, targets, rows=4, vocab_chunk=chunk).terms
    kl, top1, nll = next_token_terms(hidden, weight, bias, targets, full, vocab_chunk=chunk)
    expected_kl = (logp_full.exp() * (logp_full - logp)).sum(-1)
    assert torch.allclose(kl, expected_kl, atol=1e-5)
    assert expected_kl.max() > 0.1  # the runs differ: a real test of the formula
    assert torch.equal(top1, logits.argmax(-1))
    assert torch.allclose(nll, -logp.gather(-1, targets.view(-1, 1)).view(-1), atol=1e-5)
    same = next_token_terms(hidden_full, weight, bias, targets, full, vocab_chunk=chunk)[0]
    assert torch.equal(same, torch.zeros(rows, dtype=torch.float64))  # unchanged hidden states: exactly 0


def test_next_token_terms_first_maximum_wins_across_chunks():
    hidden = torch.ones(1, 1)
    weight = torch.tensor([[0.0], [2.0], [1.0], [2.0]])  # the maximum at words 1 and 3, in different chunks
    full = full_next(torch.zeros(1, 1), weight, None, torch.tensor([0])).terms  # uniform: every logit 0
    _, top1, _ = next_token_terms(hidden, weight, None, torch.tensor([0]), full, vocab_chunk=2)
    assert top1.tolist() == [1]


@pytest.mark.parametrize("keep_bytes", [0, KEEP_LOGITS_BYTES])
@pytest.mark.parametrize("rows", [1, 3, 100])
def test_full_terms_are_the_sums_over_the_vocabulary(rows, keep_bytes):
    """Each term by its definition; row chunks (through a reused buffer) or the scan's kept logits change nothing."""
    gen = torch.Generator().manual_seed(rows)
    hidden = torch.randn(7, 5, generator=gen)
    weight = torch.randn(11, 5, generator=gen)
    bias = torch.randn(11, generator=gen)
    logits = hidden @ weight.T + bias
    logp = torch.log_softmax(logits, -1)
    t = full_next(hidden, weight, bias, torch.zeros(7, dtype=torch.long), rows=rows, keep_bytes=keep_bytes).terms
    p = logp.double().exp()
    assert torch.allclose(t.p_sum, p.sum(-1))
    assert torch.allclose(t.p_head, p @ weight.double(), atol=1e-5)
    assert torch.allclose(t.lse, logits.double().logsumexp(-1), atol=1e-5)
    assert torch.equal(t.hidden, hidden.double())
    picked = t.take(torch.tensor([5, 0]))
    assert torch.equal(picked.p_head, t.p_head[[5, 0]]) and torch.equal(picked.lse, t.lse[[5, 0]])


@pytest.mark.parametrize("keep_bytes", [0, KEEP_LOGITS_BYTES])
@pytest.mark.parametrize("rows", [1, 3, 100])
def test_full_next_equals_the_textbook_values_without_the_whole_matrix(rows, keep_bytes):
    """Top-1, the targets' log-probabilities, the perplexity and the KL terms, made ``rows`` positions at a time."""
    gen = torch.Generator().manual_seed(10 + rows)
    hidden = torch.randn(7, 5, generator=gen)
    weight = torch.randn(11, 5, generator=gen) * 2
    bias = torch.randn(11, generator=gen)
    targets = torch.randint(0, 11, (7,), generator=gen)
    logp = torch.log_softmax((hidden @ weight.T + bias).double(), -1)
    nxt = full_next(hidden, weight, bias, targets, rows=rows, vocab_chunk=4, keep_bytes=keep_bytes)
    assert torch.equal(nxt.top1, logp.argmax(-1))
    assert torch.allclose(nxt.target_logp.double(), logp.gather(-1, targets.view(-1, 1)).view(-1), atol=1e-5)
    assert nxt.ppl == pytest.approx(perplexity(logp, targets), rel=1e-5)
    p = logp.exp()
    assert torch.allclose(nxt.terms.p_sum, p.sum(-1))
    assert torch.allclose(nxt.terms.lse, (hidden @ weight.T + bias).double().logsumexp(-1), atol=1e-5)
    assert torch.allclose(nxt.terms.p_head, p @ weight.double(), atol=1e-5)
    assert torch.equal(nxt.terms.hidden, hidden.double())


def test_the_kept_logits_give_the_row_blocks_terms():
    """The two ways of making ``p`` (kept scan logits, or row blocks made again) agree to float32 rounding, and
    top-1, log-sum-exp and targets are the scan's in both: a budget identical to full still has a KL of exactly 0."""
    gen = torch.Generator().manual_seed(3)
    hidden, weight = torch.randn(9, 6, generator=gen), torch.randn(300, 6, generator=gen) * 2
    targets = torch.randint(0, 300, (9,), generator=gen)
    kept = full_next(hidden, weight, None, targets, vocab_chunk=64)
    made = full_next(hidden, weight, None, targets, rows=4, vocab_chunk=64, keep_bytes=0)
    assert torch.equal(kept.top1, made.top1) and torch.equal(kept.terms.lse, made.terms.lse)
    assert torch.equal(kept.target_logp, made.target_logp)
    assert torch.allclose(kept.terms.p_sum, made.terms.p_sum, rtol=0, atol=3e-6)  # float32 rounding of p
    assert torch.allclose(kept.terms.p_head, made.terms.p_head, rtol=1e-5, atol=2e-5)
