"""Turning user text into model input, with a length cap and clear errors."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["DEFAULT_MAX_TOKENS", "Encoded", "TextError", "encode"]

DEFAULT_MAX_TOKENS = 1024


class TextError(ValueError):
    """Text that cannot be analysed (the message is user-facing)."""


@dataclass(frozen=True)
class Encoded:
    """Token ids ``(1, n_tokens)``; ``truncated_from`` is the original length if the cap cut it, else None."""

    ids: torch.Tensor
    truncated_from: int | None

    @property
    def n_tokens(self) -> int:
        return int(self.ids.shape[1])


def encode(tokenizer, text: str, max_tokens: int = DEFAULT_MAX_TOKENS, model_limit: int | None = None,
           min_tokens: int = 1) -> Encoded:
    """Tokenize ``text`` with the tokenizer's default special tokens, capped at ``max_tokens``.

    The cap never exceeds ``model_limit`` (the model's own positional limit).
    A longer text is cut to the cap (``truncated_from`` records the original
    length).  Empty text, or fewer than ``min_tokens`` tokens, raises
    :class:`TextError`.
    """
    if text is None or not str(text).strip():
        raise TextError("the text is empty: type or paste some text to analyse")
    if max_tokens < 1:
        raise TextError(f"the token cap must be at least 1, got {max_tokens}")
    cap = min(max_tokens, model_limit) if model_limit else max_tokens
    if cap < min_tokens:  # a longer text would be cut below what the model needs
        raise TextError(f"the token cap is {cap}; at least {min_tokens} tokens are needed")
    ids = tokenizer(str(text), return_tensors="pt")["input_ids"]
    n = int(ids.shape[1])
    if n < min_tokens:
        raise TextError(f"the text has {n} token(s); at least {min_tokens} are needed")
    if n > cap:
        # Keep the tokenizer's closing special token (e.g. BERT's [SEP]) if it added one.
        closing = tokenizer.sep_token_id
        cut = ids[:, :cap]
        if closing is not None and int(ids[0, -1]) == closing:
            cut = torch.cat([ids[:, : cap - 1], ids[:, -1:]], dim=1)
        return Encoded(cut, n)
    return Encoded(ids, None)
