"""Which attention implementation a model is loaded with: ours (``"attnviz"``) or one transformers knows."""

from __future__ import annotations

from .errors import ModelLoadError

_BUILTIN_ATTENTION = ("eager", "sdpa", "flex_attention")


def prepare_attention(attn_implementation: str) -> str:
    """The name to pass to ``from_pretrained``: ours registered if asked for; names transformers lacks refused."""
    from ..engine.hf_attention import ATTN_IMPL, ensure_registered

    if attn_implementation == ATTN_IMPL:
        return ensure_registered()
    from transformers import AttentionInterface

    known = ("eager", *AttentionInterface().valid_keys())
    if not isinstance(attn_implementation, str) or not (
        attn_implementation in known or attn_implementation.startswith(("flash_attention", "paged|"))
    ):
        raise ModelLoadError(
            f"Unknown attention implementation {attn_implementation!r}: use 'attnviz' (ours), 'eager' or 'sdpa'."
        )
    return attn_implementation


def is_custom_attention(attn_implementation: str) -> bool:
    """True for functions registered from outside transformers (such as ours)."""
    return not (attn_implementation in _BUILTIN_ATTENTION or attn_implementation.startswith("flash_attention"))
