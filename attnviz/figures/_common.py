"""Helpers shared by the figure modules: token labels, tick thinning, layout defaults.

Plotly renders tick labels, hover labels and titles as a small subset of HTML, so
every piece of *user text* (token labels) goes through :func:`plotly_text`, which
escapes ``& < >`` (plotly.js decodes those entities back). Titles passed in by the
caller are used as given, so a caller may still write ``<b>`` in a title on purpose.
"""

from __future__ import annotations

import html
import math
import unicodedata
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

#: Okabe–Ito palette: distinguishable for the common kinds of colour blindness.
OKABE_ITO = [
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow (poor on white: kept last)
    "#999999",  # grey, for Okabe-Ito's black: black lines vanish on a dark page
]

WEIGHT_SCALE = "Blues"  # sequential, colour-blind safe, 0 = white
THUMB_SCALE = WEIGHT_SCALE  # the one rule, on every page: darker = more attention
STAT_SCALE = "Purples"  # head statistics: light to dark as well (darker = larger), another hue than attention
GAP_GREY = "#cfcfcf"  # between head tiles: a tile of zeros is white, so the gaps cannot be
DIVERGING_SCALE = "RdBu"  # red = negative, blue = positive; always used symmetric around 0
MASKED_GREY = "#bdbdbd"
MUTED = "#777777"
"""Secondary text and guide lines: readable on white (4.5:1) and on Streamlit's dark background (4.4:1), which a
browser in dark mode gets; the darker greys used before vanished there."""

DEFAULT_HEIGHT = 720


def _slim_template(name: str, drop_layout: frozenset[str], traces: tuple[str, ...]) -> dict:
    """plotly's template ``name`` without the parts these figures never use, as a plain dict.

    A figure carries its whole template: plotly_white is 7 kB of JSON (defaults for maps,
    3-D scenes and two dozen trace types), validated when each figure is made and serialised
    when it is sent.  A slim one is much cheaper to make and send (benchmarks/README.md), and
    the pages redraw figures on every slider move.
    """
    full = pio.templates[name].to_plotly_json()
    return {"layout": {k: v for k, v in full["layout"].items() if k not in drop_layout},
            "data": {t: full["data"][t] for t in traces if t in full["data"]}}


TEMPLATE = _slim_template("plotly_white", frozenset({"colorscale", "geo", "mapbox", "polar", "scene", "ternary"}),
                          ("heatmap", "scatter", "bar", "table"))
"""plotly_white as attnviz's figures see it: the same pictures (tested pixel for pixel in Chromium), a fraction
of the cost."""


def char_width(ch: str) -> int:
    """Display width of one character: 2 for wide CJK / emoji, 0 for combining marks, else 1."""
    if unicodedata.combining(ch) or ch in "\u200d\ufe0f\ufe0e":
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def text_width(s: str) -> int:
    return sum(char_width(c) for c in s)


_NARROW_CHARS = frozenset(" !'(),-./:;I[]fijlrt{|}‘’·")
_MID_CHARS = frozenset('"*?')
_WIDE_CHARS = frozenset("%@MWmw↵⇥…")


def text_px(text: str, size: float) -> float:
    """Width in px of plotly ``text`` (entities allowed) at a font of ``size`` px, estimated from above.

    Per character, in ems of the app's font (Source Sans, measured in Chromium): narrow
    punctuation and letters 0.35, ``" * ?`` 0.45, other lower case 0.55, other Latin 0.66,
    ``m w M W % @`` and the whitespace arrows 0.95, CJK 1.0, emoji 1.25.  On the 610 distinct
    token labels of the app's examples it is at most 0.003 em under the real width, 0.83 em over.
    """
    em = 0.0
    for c in html.unescape(text):
        columns = char_width(c)  # 0 for joiners and combining marks, 2 for CJK and emoji
        if columns == 0:
            continue
        if ord(c) >= 0x1F000:
            em += 1.25
        elif columns == 2:
            em += 1.0
        elif c in _NARROW_CHARS:
            em += 0.35
        elif c in _MID_CHARS:
            em += 0.45
        elif c in _WIDE_CHARS:
            em += 0.95
        else:
            em += 0.55 if c.islower() else 0.66
    return em * size


def colorbar(title: str, **extra) -> dict:
    """A colour bar 14 px thick, its title on top, standing right of the plot at a fixed gap.

    plotly's default puts it 2 % of the plot's width away, so the right margin it needs would
    depend on the figure's width, which the server does not know (see :func:`colorbar_px`).
    """
    return dict(title=dict(text=title, side="top"), thickness=14, x=1.0, xanchor="left", xpad=COLORBAR_GAP_PX,
                **extra)


COLORBAR_GAP_PX = 12


def colorbar_px(title: str, ticks: Sequence[str]) -> float:
    """The right margin (px) a :func:`colorbar` needs: its gap, then the wider of its title
    (lines split at ``<br>``, 14 px in Streamlit's theme) and the bar with its widest tick label (12 px),
    then the strip plotly's toolbar covers (:data:`MODEBAR_PX`)."""
    title_px = max(text_px(line, 14) for line in title.split("<br>"))
    bar_px = 14 + 6 + max((text_px(t, 12) for t in ticks), default=0.0)
    return COLORBAR_GAP_PX + max(title_px, bar_px) + COLORBAR_PAD_PX + MODEBAR_PX


COLORBAR_PAD_PX = 24  # beyond the bar or title: plotly's own padding and a little air (measured)
MODEBAR_PX = 30
"""The strip at a figure's right edge that plotly's vertical toolbar covers on hover (24 px buttons, 2 px from the
edge, measured in Chromium) and a little air: a colour bar's caption and ticks stay left of it."""


def visible(label: str) -> str:
    """Make whitespace in a token visible: newline → ↵, tab → ⇥, an all-space token → ␣, empty → ∅."""
    s = str(label)
    if s == "":
        return "∅"
    s = s.replace("\r\n", "↵").replace("\n", "↵").replace("\r", "↵").replace("\t", "⇥")
    if s.strip(" ") == "":
        return "␣" * min(len(s), 3)
    # other control characters would break SVG text
    return "".join(c if unicodedata.category(c) != "Cc" else "�" for c in s)


def truncate(s: str, max_width: int) -> str:
    """Cut ``s`` to at most ``max_width`` display columns, ending with … when cut."""
    if text_width(s) <= max_width:
        return s
    out, w = [], 0
    for c in s:
        cw = char_width(c)
        if w + cw > max_width - 1:
            break
        out.append(c)
        w += cw
    return "".join(out) + "…"


def plotly_text(s: str) -> str:
    """Escape user text for plotly's pseudo-HTML (it decodes &amp; &lt; &gt; back)."""
    return html.escape(s, quote=False)


def short_label(label: str, max_width: int = 12) -> str:
    """A token label ready for a tick: whitespace visible, truncated, escaped."""
    return plotly_text(truncate(visible(label), max_width))


def check_labels(labels: Sequence[str] | None, n: int, what: str) -> list[str]:
    """Return ``labels`` as a list of ``n`` strings (positions if ``None``); raise on a length mismatch."""
    if labels is None:
        return [str(i) for i in range(n)]
    labels = [str(x) for x in labels]
    if len(labels) != n:
        raise ValueError(f"{what}: got {len(labels)} labels for {n} positions")
    return labels


def as_2d(m, name: str) -> np.ndarray:
    a = np.asarray(m)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {a.shape}")
    return a


def f32(a: np.ndarray) -> np.ndarray:
    """float32 copy for plotly: half the bytes of float64 once base64-encoded, plenty of precision to look at."""
    return np.ascontiguousarray(a, dtype=np.float32)


def blocks(n: int, factor: int) -> list[tuple[int, int]]:
    """Inclusive (first, last) token positions of each pooled block along an axis of length ``n``."""
    return [(s, min(s + factor, n) - 1) for s in range(0, n, factor)]


def axis_categories(labels: Sequence[str], factor: int = 1, hover_width: int = 24) -> tuple[list[str], list[str]]:
    """Unique category names (used as data coordinates and in hover) and short tick texts, one per cell.

    Token labels repeat ("the" twice), so a cell is never named by its label alone: the
    name carries the position, e.g. ``‘cat’ (#5)``, or for a pooled block ``#8–#11 ‘on the mat’``.
    """
    names, ticks = [], []
    if factor == 1:
        for i, lab in enumerate(labels):
            names.append(f"‘{short_label(lab, hover_width)}’ (#{i})")
            ticks.append(short_label(lab))
    else:
        for a, b in blocks(len(labels), factor):
            joined = "".join(visible(x) for x in labels[a : b + 1])
            names.append(f"#{a}–#{b} ‘{plotly_text(truncate(joined, hover_width))}’")
            ticks.append(f"#{a}")
    return names, ticks


def thinned(names: list[str], ticks: list[str], max_ticks: int) -> tuple[list[str], list[str]]:
    """Every tick when there are at most ``max_ticks``; else every k-th, so labels never overlap."""
    if len(names) <= max_ticks:
        return names, ticks
    step = nice_step(math.ceil(len(names) / max_ticks))
    return names[::step], ticks[::step]


def nice_step(at_least: int) -> int:
    """Smallest of 1, 2, 5, 10, 20, 25, 50, 100, … that is ≥ ``at_least`` (ticks land on round positions)."""
    scale = 1
    while True:
        for m in (1, 2, 5, 10, 20, 25, 50):
            if m * scale >= at_least:
                return m * scale
        scale *= 100


def category_axis(names: list[str], ticks: list[str], title: str, max_ticks: int, **extra) -> dict:
    """Layout dict for a category axis whose coordinates are the unique ``names`` in order."""
    tv, tt = thinned(names, ticks, max_ticks)
    return dict(
        type="category",
        categoryorder="array",
        categoryarray=names,
        tickmode="array",
        tickvals=tv,
        ticktext=tt,
        title=dict(text=title),
        showgrid=False,
        zeroline=False,
        automargin=True,
        **extra,
    )


def tick_font_size(n_ticks: int) -> int:
    return 12 if n_ticks <= 30 else 11 if n_ticks <= 50 else 10


def title_text(title: str, note: str | None = None) -> str:
    """Main title, with an optional smaller note under it (e.g. the pooling note); ``\n`` in the note starts a
    new line (plotly's titles never wrap, so a long note is cut in a narrow chart unless it is split)."""
    if note:
        lines = "".join(f"<br><span style='font-size:13px;color:{MUTED}'>{line}</span>" for line in note.split("\n"))
        return f"{title}{lines}"
    return title


def pooling_note(factor: int, what: str = "averages", shown: str = "shown") -> str | None:
    """The subtitle of a figure pooled by ``factor`` (None when it is not), e.g. "shown at 1/4 resolution: ..."."""
    if factor <= 1:
        return None
    return f"{shown} at 1/{factor} resolution: each cell {what} {factor}×{factor} token pairs"


def layout_dict(title: str, height: int, note: str | None = None, margin: dict | None = None, **extra) -> dict:
    """Common look as a layout dict: white template, left-aligned title, room for a subtitle, readable hover labels.

    Pass it whole to ``go.Figure(..., layout=...)``: validated once there, about half the time of
    ``update_layout`` (which matters for figures redrawn on every slider move).  ``margin`` (px,
    any of ``l r t b``) overrides those default margins.
    """
    return dict(
        template=TEMPLATE,
        title=dict(text=title_text(title, note), x=0.01, xanchor="left", font=dict(size=17)),
        height=int(height),
        margin=dict(l=70, r=30, t=70 + 25 * (note.count("\n") + 1) if note else 70, b=60) | (margin or {}),
        hoverlabel=dict(
            align="left", bgcolor="white", bordercolor="#888", font=dict(size=13, color="#222"), namelength=-1
        ),
        font=dict(size=12),
        modebar=dict(orientation="v"),  # down the right edge: across the top it covered long titles
        **extra,
    )


def base_layout(fig: go.Figure, title: str, height: int, note: str | None = None, **extra) -> go.Figure:
    """Apply :func:`layout_dict` to an existing figure."""
    layout = layout_dict(title, height, note, **extra)
    fig.layout.template = layout.pop("template")  # replaced whole: update_layout would merge it into the default
    fig.update_layout(**layout)
    return fig
