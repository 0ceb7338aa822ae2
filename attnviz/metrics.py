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
from dataclasses import dataclass

import torch

__all__ = ["CausalSums", "causal_quality", "encoder_quality", "next_token_terms", "perplexity"]


def _nll_sum(logprobs: torch.Tensor, targets: torch.Tensor) -> float:
    return -float(logprobs.gather(-1, targets.view(-1, 1)).sum())


def perplexity(logprobs: torch.Tensor, targets: torch.Tensor) -> float:
    """``exp(mean NLL)`` of ``targets`` ``(n,)`` under log-probabilities ``(n, vocab)``."""
    return math.exp(_nll_sum(logprobs, targets) / len(targets))


@dataclass
class CausalSums:
    """Running sums behind :func:`causal_quality`, so long texts can be scored in chunks of positions."""

    positions: int = 0
    kl: float = 0.0
    agree: int = 0
    nll: float = 0.0

    def add_identical(self, logp_full: torch.Tensor, targets: torch.Tensor) -> None:
        """Positions where the budgeted run equals the full run: KL 0, agreeing, the full NLL."""
        self.positions += len(targets)
        self.agree += len(targets)
        self.nll += _nll_sum(logp_full, targets)

    def add(self, logp_full: torch.Tensor, logp_budget: torch.Tensor, targets: torch.Tensor) -> None:
        """Positions given as log-probabilities ``(rows, vocab)`` of both runs."""
        self.positions += len(targets)
        self.kl += float((logp_full.exp() * (logp_full - logp_budget)).sum())
        self.agree += int((logp_full.argmax(-1) == logp_budget.argmax(-1)).sum())
        self.nll += _nll_sum(logp_budget, targets)

    def add_terms(self, kl: torch.Tensor, top1: torch.Tensor, top1_full: torch.Tensor, nll: torch.Tensor) -> None:
        """Positions given as per-position terms ``(rows,)`` (see :func:`next_token_terms`)."""
        self.positions += len(kl)
        self.kl += float(kl.sum())
        self.agree += int((top1 == top1_full).sum())
        self.nll += float(nll.sum())

    def result(self, ppl_full: float) -> dict[str, float]:
        n = self.positions
        return {
            "kl": max(0.0, self.kl / n),  # exactly 0 for identical inputs; rounding could give -1e-9
            "top1": self.agree / n,
            "ppl": math.exp(self.nll / n),
            "ppl_full": ppl_full,
        }


def next_token_terms(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor,
                     probs_full: torch.Tensor, p_sum: torch.Tensor, p_log_p: torch.Tensor,
                     vocab_chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-position KL, top-1 and NLL of a budgeted run, from its last hidden states, vocabulary chunk by chunk.

    The output layer ``logits = hidden @ weight.T + bias`` is never built whole:
    ``(rows, vocab_chunk)`` slices go through an online log-sum-exp, so many
    rows share one efficient matrix product and memory stays small.  With
    ``log q = z - logsumexp(z)``: ``KL(p || q) = sum p log p - sum p z + logsumexp(z) sum p``.

    Args:
        hidden: ``(rows, d)``; weight ``(vocab, d)``; bias ``(vocab,)`` or None.
        targets: ``(rows,)`` the actual next tokens.
        probs_full: the full run's probabilities at the same positions: anything whose
            ``probs_full[:, v0:v1]`` gives those columns ``(rows, v1 - v0)`` (a tensor, or a
            lazy view that builds them).
        p_sum, p_log_p: ``(rows,)`` float64 row sums of ``p`` and ``p log p``.

    Returns:
        ``kl`` (float64, nats), ``top1`` (int64, the budgeted argmax), ``nll`` (float64, nats), each ``(rows,)``.
    """
    rows = hidden.shape[0]
    run_max = torch.full((rows,), float("-inf"))
    run_sum = torch.zeros(rows)
    top1 = torch.zeros(rows, dtype=torch.long)
    p_dot_z = torch.zeros(rows, dtype=torch.float64)
    target_logit = torch.zeros(rows)
    for v0 in range(0, weight.shape[0], vocab_chunk):
        v1 = min(v0 + vocab_chunk, weight.shape[0])
        z = torch.nn.functional.linear(hidden, weight[v0:v1], None if bias is None else bias[v0:v1]).float()
        chunk_max, chunk_arg = z.max(-1)
        better = chunk_max > run_max  # strict: the first maximum wins, as argmax does
        top1 = torch.where(better, chunk_arg + v0, top1)
        p_dot_z += (probs_full[:, v0:v1] * z).sum(-1, dtype=torch.float64)
        here = (targets >= v0) & (targets < v1)
        target_logit[here] = z[here].gather(-1, (targets[here] - v0).view(-1, 1)).view(-1)
        new_max = torch.maximum(run_max, chunk_max)
        run_sum = run_sum * torch.exp(run_max - new_max) + z.sub_(new_max.unsqueeze(-1)).exp_().sum(-1)
        run_max = new_max
    lse = (run_max + torch.log(run_sum)).double()
    return p_log_p - p_dot_z + lse * p_sum, top1, lse - target_logit.double()


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
    s = shared_prefix
    sums = CausalSums()
    sums.add_identical(logp_full[:s], targets[:s])
    sums.add(logp_full[s:], logp_budget, targets[s:])
    return sums.result(perplexity(logp_full, targets))


def encoder_quality(h_full: torch.Tensor, h_budget: torch.Tensor) -> dict[str, float]:
    """Cosine similarities of last hidden states ``(tokens, hidden)``, budget vs full."""
    cos = torch.nn.functional.cosine_similarity
    emb = cos(h_full.mean(0), h_budget.mean(0), dim=0)
    tok = cos(h_full, h_budget, dim=-1).mean()
    return {"cos_embedding": float(emb), "cos_tokens": float(tok)}
