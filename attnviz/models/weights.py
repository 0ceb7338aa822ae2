"""``from_pretrained`` the way attnviz always calls it: float32, a chosen attention, no random parameters."""

from __future__ import annotations

import pathlib
from typing import Any

import torch

from .errors import ModelLoadError


def auto_class(causal: bool) -> Any:
    """transformers' auto class: causal LMs with their head (for logits), encoders without one."""
    from transformers import AutoModel, AutoModelForCausalLM

    return AutoModelForCausalLM if causal else AutoModel


def load_weights(auto_cls: Any, source: str | pathlib.Path, attn_implementation: str, **kwargs: Any) -> Any:
    """The model ``auto_cls.from_pretrained(source, **kwargs)`` in float32, refusing incomplete checkpoints.

    Raises:
        ModelLoadError: the checkpoint lacks weights that would then be random.
    """
    model, info = auto_cls.from_pretrained(
        source, dtype=torch.float32, attn_implementation=attn_implementation, output_loading_info=True, **kwargs
    )
    _check_loading_info(info, type(model).__name__, str(source))
    if any(t.is_floating_point() and t.dtype != torch.float32 for t in (*model.parameters(), *model.buffers())):
        model = model.float()  # (only when needed: GGUF-converted models refuse .float() although already float32)
    return model


def _check_loading_info(info: dict, model_name: str, source: str) -> None:
    """Refuse checkpoints that would leave parameters randomly initialised (pooler layers excepted)."""
    missing = sorted(
        str(k) for k in (*info.get("missing_keys", ()), *info.get("mismatched_keys", ())) if "pooler" not in str(k)
    )
    if missing:
        shown = ", ".join(missing[:3])
        raise ModelLoadError(
            f"{source} has no weights for {len(missing)} parameter(s) of {model_name} (e.g. {shown}); "
            "they would be random, so it is not loaded. Use a checkpoint with a language-model head (causal models) "
            "or a complete encoder."
        )
