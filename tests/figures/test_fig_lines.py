"""token_lines: lines only from selected queries, only for weights >= threshold."""

import numpy as np
import plotly.graph_objects as go
import pytest
from helpers_figures import DUP_LABELS, causal_attention

from attnviz.figures import token_lines


def _line_traces(fig):
    return [t for t in fig.data if t.meta and "key" in t.meta]


def test_lines_only_for_selected_and_above_threshold():
    n = len(DUP_LABELS)
    w = causal_attention(n, seed=3)
    sel = [5, 7]
    thr = 0.05
    fig = token_lines(w, DUP_LABELS, selected=sel, threshold=thr, title="Layer 2, head 1")
    assert isinstance(fig, go.Figure)
    assert "Layer 2, head 1" in fig.layout.title.text
    lines = _line_traces(fig)
    got = {(t.meta["query"], t.meta["key"]) for t in lines}
    expected = {(q, k) for q in sel for k in range(n) if w[q, k] >= thr}
    assert got == expected and len(lines) == len(expected)
    for t in lines:
        q, k = t.meta["query"], t.meta["key"]
        assert tuple(t.x) == (0.0, 1.0) and tuple(t.y) == (q, k)
        assert t.meta["weight"] == pytest.approx(w[q, k])
    # width and opacity grow with the weight
    by_w = sorted(lines, key=lambda t: t.meta["weight"])
    assert by_w[0].line.width < by_w[-1].line.width
    assert by_w[0].opacity < by_w[-1].opacity


def test_no_selection_no_lines_and_columns_present():
    n = len(DUP_LABELS)
    fig = token_lines(causal_attention(n), DUP_LABELS, selected=[])
    assert _line_traces(fig) == []
    cols = {t.name: t for t in fig.data if t.mode == "text"}
    assert set(cols) == {"queries", "keys"}
    assert list(cols["queries"].y) == list(range(n))  # duplicates each keep their own row
    assert list(cols["queries"].x) == [0.0] * n and list(cols["keys"].x) == [1.0] * n


def test_selected_tokens_highlighted_and_hover_in_words():
    n = len(DUP_LABELS)
    w = causal_attention(n)
    fig = token_lines(w, DUP_LABELS, selected=[4], threshold=0.0)
    q = next(t for t in fig.data if t.name == "queries")
    assert q.text[4] == "<b>cat</b>" and q.text[1] == "cat"
    assert any(s.type == "rect" for s in fig.layout.shapes)
    hovers = next(t for t in fig.data if t.name == "hover #4")
    assert hovers.text[0].startswith("query ‘cat’ (#4) → key ‘The’ (#0): ")
    assert "of its attention" in hovers.text[0]
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text


def test_height_grows_with_n_and_is_capped():
    h = [token_lines(causal_attention(n), None, selected=[n - 1]).layout.height for n in (10, 60, 100, 400)]
    assert h[0] < h[1] < h[2] <= 1600 and h[3] == 1600
    fig = token_lines(causal_attention(100), ["很长的词" * 5] * 100, selected=[99])
    q = next(t for t in fig.data if t.name == "queries")
    assert q.textfont.size >= 8


def test_bad_selection():
    with pytest.raises(IndexError):
        token_lines(np.eye(3), None, selected=[3])
