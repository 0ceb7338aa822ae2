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

import dataclasses
import math
from dataclasses import dataclass

import torch

from ..engine.linear import linear

__all__ = ["Quality", "CausalSums", "FullNext", "FullTerms", "encoder_quality", "full_next", "log_softmax_rows",
           "next_token_terms"]


@dataclass(frozen=True)
class Quality:
    """A budgeted run's quality against the full run, measured.

    Causal models: ``kl`` (nats, mean KL(full ‖ budget) of the next-token distributions), ``top1`` (share of
    positions predicting the same next token), ``ppl`` and ``ppl_full`` (perplexities of the text's own next
    tokens).  Encoders: ``cos_embedding`` and ``cos_tokens`` (cosines with the full run's outputs).  Both:
    ``mass_kept``, the mean share of each row's full softmax held by the kept keys.  Missing ones are None.
    """

    kl: float | None = None
    top1: float | None = None
    ppl: float | None = None
    ppl_full: float | None = None
    mass_kept: float = 1.0
    cos_embedding: float | None = None
    cos_tokens: float | None = None

    def to_json(self) -> dict[str, float | None]:
        """The ``quality`` block of a result row."""
        return dataclasses.asdict(self)


@dataclass
class CausalSums:
    """Running sums of a causal run's quality, so long texts can be scored in chunks of positions."""

    positions: int = 0
    kl: float = 0.0
    agree: int = 0
    nll: float = 0.0

    def add_identical(self, target_logp: torch.Tensor) -> None:
        """Positions where the budgeted run equals the full run: KL 0, agreeing, the full NLL.

        ``target_logp`` ``(rows,)``: the full run's log-probability of each position's actual next token.
        """
        self.positions += len(target_logp)
        self.agree += len(target_logp)
        self.nll -= float(target_logp.sum())

    def add_terms(self, kl: torch.Tensor, top1: torch.Tensor, top1_full: torch.Tensor, nll: torch.Tensor) -> None:
        """Positions given as per-position terms ``(rows,)`` (see :func:`next_token_terms`)."""
        self.positions += len(kl)
        self.kl += float(kl.sum())
        self.agree += int((top1 == top1_full).sum())
        self.nll += float(nll.sum())

    def result(self, ppl_full: float, mass_kept: float) -> Quality:
        """The :class:`Quality` of the positions added so far (``mass_kept`` comes from the pass's counts)."""
        n = self.positions
        return Quality(kl=max(0.0, self.kl / n),  # exactly 0 for identical inputs; rounding could give -1e-9
                       top1=self.agree / n, ppl=math.exp(self.nll / n), ppl_full=ppl_full, mass_kept=mass_kept)


VOCAB_CHUNK = 2048
"""Words per slice of the output layer: a budget's log-sum-exp is compared with the full run's, so both
are scanned in the same slices (:func:`full_next`, :func:`next_token_terms`)."""
KEEP_LOGITS_BYTES = 64 * 2**20
"""The full run keeps its logits for ``p`` when they fit in this (SmolLM2: up to 341 positions), else makes them
again in row blocks."""


@dataclass(frozen=True)
class FullTerms:
    """What a budgeted run's KL needs from the full run, per position (all float64).

    ``hidden`` ``(rows, d)``: the full run's last hidden states; ``lse`` ``(rows,)``: the
    log-sum-exp of its logits, computed exactly as :func:`next_token_terms` computes a
    budget's; ``p_sum`` ``(rows,)``: ``sum_v p_v``; ``p_head`` ``(rows, d)``: ``sum_v p_v W_v``
    for the output layer's weight ``W`` ``(vocab, d)``, ``p`` the full run's next-token probabilities.
    """

    hidden: torch.Tensor
    lse: torch.Tensor
    p_sum: torch.Tensor
    p_head: torch.Tensor

    def take(self, positions: torch.Tensor) -> FullTerms:
        """The rows at ``positions`` ``(m,)``."""
        return FullTerms(*(t.index_select(0, positions) for t in (self.hidden, self.lse, self.p_sum, self.p_head)))


def log_softmax_rows(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                     vocab_chunk: int = 2048) -> torch.Tensor:
    """log-softmax over the vocabulary ``(rows, vocab)`` (float32) of the logits ``hidden @ weight.T + bias``.

    The normaliser is a float32 log-sum-exp per ``vocab_chunk`` words, combined
    in float64.  (float32's log-softmax over all 49,152 words at once leaves
    ``sum(exp(logp))`` off 1 by up to 3e-5, which would show as a KL of that
    size between identical runs.)
    """
    logits = linear(hidden, weight, bias).float()
    partial = torch.stack([logits[:, v:v + vocab_chunk].logsumexp(-1) for v in range(0, logits.shape[-1], vocab_chunk)],
                          dim=-1)
    return logits.sub_(partial.double().logsumexp(-1, keepdim=True).float())


@dataclass(frozen=True)
class FullNext:
    """What budgets are compared against from the full run's next-token distributions, per position ``0..P-1``.

    Kept instead of the ``(P, vocab)`` log-probabilities themselves (100 MB at 512 tokens of
    SmolLM2, 200 MB at 1024): ``top1`` ``(P,)`` the full model's most likely next token,
    ``target_logp`` ``(P,)`` float64 its log-probability of the actual next token, and the
    :class:`FullTerms` of every budget's KL.
    """

    top1: torch.Tensor
    target_logp: torch.Tensor
    terms: FullTerms

    @property
    def ppl(self) -> float:
        """The full model's perplexity on the text."""
        return math.exp(-float(self.target_logp.sum()) / len(self.target_logp))


def full_next(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor,
              rows: int = 64, vocab_chunk: int = VOCAB_CHUNK, keep_bytes: int = KEEP_LOGITS_BYTES) -> FullNext:
    """:class:`FullNext` from the full run's last hidden states ``(P, d)`` and the actual next tokens ``(P,)``.

    top-1, log-sum-exp and the targets' logits come from the same scan of the logits as every
    budget's (:func:`next_token_terms`), so identical runs agree exactly.  ``p`` for ``p_sum`` and
    ``p_head`` is made ``rows`` positions at a time in one reused buffer (fresh per-chunk temporaries
    grow the heap), never the whole ``(P, vocab)`` matrix, unless the scan's logits fit in ``keep_bytes``:
    then they are kept and ``p = exp(z - lse)`` reuses them, which saves one product with the output
    layer (a fifth of a forward of SmolLM2).  ``p_head`` is a float32 matrix product: its rounding only
    scales the *difference* of hidden states in :func:`next_token_terms`.
    """
    with torch.inference_mode():
        keep = torch.empty(len(hidden), weight.shape[0]) if len(hidden) * weight.shape[0] * 4 <= keep_bytes else None
        lse, top1, target_logit = _scan_logits(hidden, weight, bias, targets, vocab_chunk, keep=keep)
        if keep is not None:
            p = keep.sub_(lse.float().unsqueeze(-1)).exp_()
            p_sum, p_head = p.sum(-1, dtype=torch.float64), linear(p, weight.T).double()
        else:
            p = torch.empty(max(1, min(rows, len(hidden))), weight.shape[0])
            sums, heads = [], []
            for a in range(0, len(hidden), rows):
                m = min(rows, len(hidden) - a)
                torch.exp(log_softmax_rows(hidden[a:a + m], weight, bias), out=p[:m])
                sums.append(p[:m].sum(-1, dtype=torch.float64))
                heads.append(linear(p[:m], weight.T).double())
            p_sum, p_head = torch.cat(sums), torch.cat(heads)
    return FullNext(top1, target_logit.double() - lse, FullTerms(hidden.double(), lse, p_sum, p_head))


def _scan_logits(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor | None,
                 vocab_chunk: int = VOCAB_CHUNK, keep: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """log-sum-exp (float64), argmax and the targets' logits of ``hidden @ weight.T + bias``, never built whole.

    ``(rows, vocab_chunk)`` slices go through an online log-sum-exp, so many rows
    share one efficient matrix product and memory stays small.  ``keep`` ``(rows, vocab)``, if given, receives
    the float32 logits.
    """
    rows = hidden.shape[0]
    run_max = torch.full((rows,), float("-inf"))
    run_sum = torch.zeros(rows)
    top1 = torch.zeros(rows, dtype=torch.long)
    target_logit = None if targets is None else torch.zeros(rows)
    for v0 in range(0, weight.shape[0], vocab_chunk):
        v1 = min(v0 + vocab_chunk, weight.shape[0])
        z = linear(hidden, weight[v0:v1], None if bias is None else bias[v0:v1]).float()
        if keep is not None:
            keep[:, v0:v1] = z
        chunk_max, chunk_arg = z.max(-1)
        better = chunk_max > run_max  # strict: the first maximum wins, as argmax does
        top1 = torch.where(better, chunk_arg + v0, top1)
        if targets is not None:
            here = (targets >= v0) & (targets < v1)
            target_logit[here] = z[here].gather(-1, (targets[here] - v0).view(-1, 1)).view(-1)
        new_max = torch.maximum(run_max, chunk_max)
        run_sum = run_sum * torch.exp(run_max - new_max) + z.sub_(new_max.unsqueeze(-1)).exp_().sum(-1)
        run_max = new_max
    return (run_max + torch.log(run_sum)).double(), top1, target_logit


def next_token_terms(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor,
                     full: FullTerms, vocab_chunk: int = VOCAB_CHUNK
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-position KL, top-1 and NLL of a budgeted run, from its last hidden states.

    With logits ``z = W h + b`` (the full run's at ``h_f``, the budget's at ``h``) and
    ``p = softmax(z_f)``: ``KL(p || q) = sum_v p_v (z_f - lse_f - z + lse)_v
    = (lse - lse_f) sum p - (sum_v p_v W_v) . (h - h_f)``.
    So one scan of the budget's logits (its log-sum-exp) is all the vocabulary work;
    for a budget that leaves a position's hidden state unchanged the KL is exactly 0.

    Args:
        hidden: ``(rows, d)``; weight ``(vocab, d)``; bias ``(vocab,)`` or None.
        targets: ``(rows,)`` the actual next tokens.
        full: the full run's :class:`FullTerms` at the same positions.

    Returns:
        ``kl`` (float64, nats), ``top1`` (int64, the budgeted argmax), ``nll`` (float64, nats), each ``(rows,)``.
    """
    lse, top1, target_logit = _scan_logits(hidden, weight, bias, targets, vocab_chunk)
    kl = (lse - full.lse) * full.p_sum - ((hidden.double() - full.hidden) * full.p_head).sum(-1)
    return kl, top1, lse - target_logit.double()


def encoder_quality(h_full: torch.Tensor, h_budget: torch.Tensor, mass_kept: float) -> Quality:
    """Cosine similarities of last hidden states ``(tokens, hidden)``, budget vs full."""
    cos = torch.nn.functional.cosine_similarity
    emb = cos(h_full.mean(0), h_budget.mean(0), dim=0)
    tok = cos(h_full, h_budget, dim=-1).mean()
    return Quality(mass_kept=mass_kept, cos_embedding=float(emb), cos_tokens=float(tok))
