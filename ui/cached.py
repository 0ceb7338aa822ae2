"""Shared caches: one loaded model per name for the whole server, and results keyed by plain values.

``st.cache_resource`` shares objects across sessions and threads without
copying (tensors are never pickled); nothing here is mutated after it is
cached, and every budget travels with its own call.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from attnviz.budget import Budget
from attnviz.measure import Reference, Row, budget_pass, encode_for, reference_pass
from attnviz.models import LoadedModel, load_model
from attnviz.observe import HeadStats, LayerSummary
from attnviz.tokens import token_labels


@st.cache_resource(show_spinner=False, max_entries=3)
def get_model(name: str) -> LoadedModel:
    """The model, loaded once per server (errors are not cached, so a fixed install is picked up)."""
    return load_model(name)


@dataclass(frozen=True)
class Analysis:
    """A text's full-attention run plus what the pages draw from it."""

    ref: Reference
    labels: list[str]
    head_stats: HeadStats | None
    summary: LayerSummary | None


@st.cache_resource(show_spinner=False, max_entries=2)
def get_analysis(model: str, text: str, max_tokens: int, layer: int | None = None,
                 summaries: bool = False) -> Analysis:
    """Full-attention reference of ``text``; weights of ``layer`` captured, per-layer summaries if asked."""
    lm = get_model(model)
    enc = encode_for(lm, text, max_tokens)
    observers = [HeadStats(), LayerSummary()] if summaries else []
    ref = reference_pass(lm, enc, capture=None if layer is None else [layer], observers=observers)
    return Analysis(ref=ref, labels=token_labels(lm.tokenizer, enc.ids[0].tolist()),
                    head_stats=observers[0] if summaries else None, summary=observers[1] if summaries else None)


@st.cache_resource(show_spinner=False, max_entries=24)
def get_row(model: str, text: str, max_tokens: int, policy: str, keys: int | None, ratio: float | None,
            sinks: int = 4, seed: int = 0, layer: int | None = None) -> Row:
    """One budget's result against the text's reference (the reference itself is cached separately)."""
    lm = get_model(model)
    ref = get_analysis(model, text, max_tokens, layer).ref
    budget = Budget(policy, keys=keys, ratio=ratio, sinks=sinks, seed=seed)
    return budget_pass(lm, ref, [budget], capture=None if layer is None else [layer])[0]
