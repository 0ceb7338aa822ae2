"""``expected_attention`` (kvpress ExpectedAttentionPress): the attention future queries are expected to pay."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .base import Press, PressView, pad_max, rotate_half
from .registry import register


def mean_rotation(view: PressView, start: int, count: int) -> torch.Tensor:
    """The rotary embedding's rotation ``(d, d)`` averaged over positions ``start .. start+count-1``."""
    cos, sin = view.rotary(torch.arange(start, start + count))  # (count, d)
    d = cos.shape[-1]
    eye = torch.eye(d)
    pair = rotate_half(eye).T  # pair @ x == rotate_half(x)
    return (cos.unsqueeze(1) * eye + sin.unsqueeze(1) * pair).mean(0)


@register
@dataclass(frozen=True)
class ExpectedAttention(Press):
    name = "expected_attention"
    kvpress_class = "ExpectedAttentionPress"
    summary = "Keeps the keys future queries are expected to attend to, from the context queries' statistics."
    methods = ("Expected attention, as kvpress's ExpectedAttentionPress: the mean and covariance of the context's "
               "queries (before the rotary embedding, after the n_sink first), rotated by the mean rotation of the "
               "next n_future_positions, give each key an expected score mean·k/√d + ½kᵀΣk/d; softmax, averaged "
               "over a KV head's query heads, times ‖v‖. The n_sink first positions are always kept.")
    n_future_positions: int = field(default=512, metadata={"min": 1})
    n_sink: int = field(default=4, metadata={"min": 0})
    use_covariance: bool = field(default=True, metadata={})
    use_vnorm: bool = field(default=True, metadata={})
    epsilon: float = field(default=0.0, metadata={"min": 0.0, "label": "ε"})

    def min_context(self) -> int:
        return self.n_sink + 1

    def short_context_reason(self) -> str:
        return f" (more than its n_sink={self.n_sink} sinks)"

    def score(self, view):
        c, d = view.context, view.keys.shape[-1]
        q = view.prerope_queries()[:, self.n_sink:]  # (q_heads, C - S, d)
        mu = q.mean(1)  # (q_heads, d)
        rot = mean_rotation(view, c, self.n_future_positions)
        keys = view.keys[:, self.n_sink:].repeat_interleave(view.group, dim=0)  # (q_heads, C - S, d)
        scores = (keys @ (mu @ rot.T).unsqueeze(-1)).squeeze(-1) / d ** 0.5
        if self.use_covariance:
            centered = q - q.mean(1, keepdim=True)
            cov = centered.transpose(1, 2) @ centered / q.shape[1]
            cov = rot @ cov @ rot.T
            scores = scores + torch.einsum("hnd,hde,hne->hn", keys, cov, keys) / d / 2
        scores = torch.softmax(scores, dim=-1).view(view.keys.shape[0], view.group, -1).mean(1)
        if self.use_vnorm:
            scores = (scores + self.epsilon) * view.values[:, self.n_sink:].norm(dim=-1)
        return pad_max(scores, left=self.n_sink)
