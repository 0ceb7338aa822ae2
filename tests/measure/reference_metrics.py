"""Textbook quality metrics from whole ``(positions, vocab)`` log-probabilities: the reference implementations the
package's chunked, memory-light metrics (:mod:`attnviz.measure.metrics`) are tested against."""

from __future__ import annotations

import math

import torch


def _nll_sum(logprobs: torch.Tensor, targets: torch.Tensor) -> float:
    return -float(logprobs.gather(-1, targets.view(-1, 1)).sum())


def perplexity(logprobs: torch.Tensor, targets: torch.Tensor) -> float:
    """``exp(mean NLL)`` of ``targets`` ``(n,)`` under log-probabilities ``(n, vocab)``."""
    return math.exp(_nll_sum(logprobs, targets) / len(targets))


def causal_quality(logp_full: torch.Tensor, logp_budget: torch.Tensor, targets: torch.Tensor,
                   shared_prefix: int = 0) -> dict[str, float]:
    """KL(full ‖ budget), top-1 agreement and perplexities, averaged over all positions.

    Args:
        logp_full: full-attention log-softmax ``(positions, vocab)``.
        logp_budget: budgeted log-softmax for positions ``shared_prefix..``
            only; the first ``shared_prefix`` positions are identical to the
            full run by construction (they count as KL 0 and agreeing).
        targets: the actual next tokens ``(positions,)``.
    """
    s = shared_prefix
    lf, lb, t = logp_full[s:], logp_budget, targets[s:]
    n = len(targets)
    kl = float((lf.exp() * (lf - lb)).sum())
    agree = s + int((lf.argmax(-1) == lb.argmax(-1)).sum())
    nll = _nll_sum(logp_full[:s], targets[:s]) + _nll_sum(lb, t)
    return {"kl": max(0.0, kl / n), "top1": agree / n, "ppl": math.exp(nll / n),
            "ppl_full": perplexity(logp_full, targets)}
