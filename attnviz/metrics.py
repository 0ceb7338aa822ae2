"""Quality metrics: how far a budgeted run is from the full-attention run.

Pure functions on tensors, unit-tested on hand-computable cases.

Causal LMs (positions t = 0..n-2 predict token t+1):
  * ``kl``   mean over positions of KL(p_full || p_budget), in nats;
  * ``top1`` share of positions whose most likely next token is unchanged;
  * ``ppl``  exp(mean negative log-likelihood of the actual next tokens).
Encoders:
  * ``cos_embedding`` cosine of the mean-pooled last hidden states;
  * ``cos_tokens``    mean per-token cosine of the last hidden states.
"""

from __future__ import annotations

import math

import torch

__all__ = ["causal_quality", "encoder_quality", "perplexity"]


def _nll_sum(logprobs: torch.Tensor, targets: torch.Tensor) -> float:
    return -float(logprobs.gather(-1, targets.view(-1, 1)).sum())


def perplexity(logprobs: torch.Tensor, targets: torch.Tensor) -> float:
    """``exp(mean NLL)`` of ``targets`` ``(n,)`` under log-probabilities ``(n, vocab)``."""
    return math.exp(_nll_sum(logprobs, targets) / len(targets))


def causal_quality(logp_full: torch.Tensor, logp_budget: torch.Tensor, targets: torch.Tensor,
                   shared_prefix: int = 0) -> dict[str, float]:
    """KL, top-1 agreement and perplexities, averaged over all positions.

    Args:
        logp_full: full-attention log-softmax ``(positions, vocab)``.
        logp_budget: budgeted log-softmax for positions ``shared_prefix..``
            only; the first ``shared_prefix`` positions are identical to the
            full run by construction (they count as KL 0 and agreeing).
        targets: the actual next tokens ``(positions,)``.
    """
    n, s = logp_full.shape[0], shared_prefix
    lf = logp_full[s:]
    kl = float((lf.exp() * (lf - logp_budget)).sum()) / n
    agree = s + int((lf.argmax(-1) == logp_budget.argmax(-1)).sum())
    nll = _nll_sum(logp_full[:s], targets[:s]) + _nll_sum(logp_budget, targets[s:])
    return {
        "kl": max(0.0, kl),  # exactly 0 for identical inputs; rounding could give -1e-9
        "top1": agree / n,
        "ppl": math.exp(nll / n),
        "ppl_full": perplexity(logp_full, targets),
    }


def encoder_quality(h_full: torch.Tensor, h_budget: torch.Tensor) -> dict[str, float]:
    """Cosine similarities of last hidden states ``(tokens, hidden)``, budget vs full."""
    cos = torch.nn.functional.cosine_similarity
    emb = cos(h_full.mean(0), h_budget.mean(0), dim=0)
    tok = cos(h_full, h_budget, dim=-1).mean()
    return {"cos_embedding": float(emb), "cos_tokens": float(tok)}
