"""HTML snippets: the text with the tokens whose next-token prediction the budget changed,
and a generated continuation with its first divergence marked.

Meant for ``st.markdown(html, unsafe_allow_html=True)`` or ``st.html(html)``. Every piece
of text (tokens and predictions) is escaped with :func:`html.escape`, so a token such as
``<b>&"`` shows literally. The snippet is a single line with no blank lines, so Markdown
treats it as one raw HTML block and does not reinterpret ``*`` or ``_`` inside it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from ._common import visible

# Backgrounds are translucent and the text keeps the page's own colour, so a highlight reads on Streamlit's light
# and dark themes alike (an opaque pale background under the dark theme's white text made the token unreadable).
CHANGED_STYLE = (
    "background:rgba(213,94,0,0.22);border-bottom:2px solid #d55e00;border-radius:3px;font-weight:600;"
    "padding:1px 0;cursor:help"
)
SAME_STYLE = "cursor:default"
BOX_STYLE = "line-height:1.9;font-size:1.02em;white-space:pre-wrap;word-wrap:break-word"


def _esc(s: str) -> str:
    return html.escape(s, quote=True)


def _token_html(label: str) -> str:
    """Escaped token text; newlines shown as ↵ and kept as line breaks."""
    parts = str(label).replace("\r\n", "\n").split("\n")
    if len(parts) == 1:
        return _esc(parts[0]) if parts[0] else "∅"
    return "↵<br>".join(_esc(p) for p in parts)


def _pred(s: str) -> str:
    return visible(s)


def changed_predictions_html(
    labels: Sequence[str],
    changed: Sequence[bool | None],
    full_pred: Sequence[str | None],
    budget_pred: Sequence[str | None],
    summary: bool = True,
    sep: str = "",
    other: str = "budget",
    other_model: str = "the budgeted model",
) -> str:
    """The text as coloured spans: a token whose next-token prediction differs under the budget is highlighted.

    Hovering any token shows a tooltip: "full predicts ‘x’, budget predicts ‘y’" where they
    differ, "both predict ‘x’" where they agree. Highlighting uses a pale orange background
    *and* a solid underline, so it does not rely on colour alone. ``summary`` adds a first
    line "N of M next-token predictions changed". ``sep`` goes between tokens (``" "`` for labels
    that carry no spaces of their own).  ``other`` names the compared run in tooltips and the summary
    (``"press"`` on the Compress page), ``other_model`` in the legend.

    ``changed[i]`` None marks a token whose prediction was not compared (the last one of a
    text: the metrics score a prediction against the token that follows); it is shown plain
    and not counted.
    """
    n = len(labels)
    for name, seq in (("changed", changed), ("full_pred", full_pred), ("budget_pred", budget_pred)):
        if len(seq) != n:
            raise ValueError(f"{name} has {len(seq)} entries for {n} labels")
    spans = []
    for i in range(n):
        fp, bp = _pred(full_pred[i] or ""), _pred(budget_pred[i] or "")
        if changed[i] is None:
            tip, style, cls = f"#{i}: no next token in the text to compare a prediction with", SAME_STYLE, "unscored"
        elif changed[i]:
            tip = f"#{i}: full predicts ‘{fp}’, {other} predicts ‘{bp}’"
            style, cls = CHANGED_STYLE, "changed"
        else:
            tip = f"#{i}: both predict ‘{fp}’" if fp == bp else f"#{i}: full predicts ‘{fp}’, {other} predicts ‘{bp}’"
            style, cls = SAME_STYLE, "same"
        spans.append(f'<span class="{cls}" title="{_esc(tip)}" style="{style}">{_token_html(labels[i])}</span>')
    n_changed = sum(bool(c) for c in changed)
    scored = sum(c is not None for c in changed)
    head = ""
    if summary:
        pct = f" ({100 * n_changed / scored:.0f}%)" if scored else ""
        head = (
            '<div style="font-size:0.9em;opacity:0.75;margin-bottom:0.4em;white-space:normal">'
            f"<b>{n_changed}</b> of {scored} next-token predictions changed{pct} under the {other}: "
            f"highlighted below; hover a token to compare. {legend_html(other_model)}</div>"
        )
    # <wbr>: a line may break between tokens; labels show spaces as ␣, so otherwise the whole text is one
    # "word" that the box can only break mid-token ("carri|ed")
    joined = (_esc(sep) if any(c.isspace() for c in sep) else _esc(sep) + "<wbr>").join(spans)
    return f'<div class="attnviz-changed">{head}<div style="{BOX_STYLE}">{joined}</div></div>'


def legend_html(other_model: str = "the budgeted model") -> str:
    """A one-line legend: what a highlighted token means (``other_model``: the run compared with full)."""
    return (
        # the sample and its "=" stay together; the explanation wraps (a 390 px phone cut it off)
        f'<span><span style="white-space:nowrap"><span style="{CHANGED_STYLE}">token</span> =</span>'
        f" {other_model} predicts a different next token here</span>"
    )


DIVERGE_STYLE = "border-radius:3px;outline:2px solid #c0392b"
CONTINUATION_STYLE = "font-size:1.05rem;line-height:1.8;white-space:pre-wrap;overflow-wrap:anywhere"


def continuation_html(pieces: Sequence[str], diverge: int | None = None,
                      color: str = "rgba(192,57,43,0.2)") -> str:
    """A generated continuation as HTML, token ``diverge`` outlined in red on ``color``.

    ``pieces`` are the new tokens' real text (so it wraps like text).  A newline is shown as ↵
    before its line break, so a token that is only a newline can still carry the outline;
    newlines before any visible text (a continuation that opens a new paragraph) are shown
    as ↵ without the break, instead of as empty lines.
    """
    spans, seen_text = [], False
    for i, piece in enumerate(pieces):
        out = []
        for j, line in enumerate(str(piece).replace("\r\n", "\n").split("\n")):
            if j:
                out.append("↵<br>" if seen_text else "↵")
            out.append(_esc(line))
            seen_text = seen_text or bool(line.strip())
        style = f"background:{color};{DIVERGE_STYLE}" if i == diverge else ""
        spans.append(f'<span style="{style}">{"".join(out)}</span>')
    return f'<div style="{CONTINUATION_STYLE}">{"".join(spans)}</div>'
