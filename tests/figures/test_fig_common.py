"""Layout helpers: the text-width estimate and colour-bar room that let heatmaps set their margins up front."""

import pytest

from attnviz.figures._common import COLORBAR_GAP_PX, MODEBAR_PX, colorbar, colorbar_px, text_px

# Widths in px at a 100-px font, measured in Chromium with the app's font (Source Sans) by canvas measureText.
MEASURED = {
    "␣earthquakes": 584.5,  # the widest of the 610 distinct token labels of the app's examples
    "␣themselves": 539.0,
    "␣Attention": 452.2,
    "Scientists": 400.9,
    "↵␣␣␣␣␣␣␣": 528.1,
    '."""': 143.1,
    "def": 134.1,
    "注": 100.0,
    "🙂": 124.8,
}


@pytest.mark.parametrize("label", MEASURED)
def test_text_px_estimates_from_above_and_not_far(label):
    real = MEASURED[label]
    est = text_px(label, 100)
    assert est >= real - 4  # (0.003 em under at most on the examples: within a pixel at tick sizes)
    assert est <= real * 1.25


def test_text_px_reads_entities_and_skips_joiners():
    assert text_px("a&amp;b", 10) == pytest.approx(text_px("a&b", 10))
    assert text_px("👍\u200d", 10) == text_px("👍", 10)
    assert text_px("", 12) == 0


def test_colorbar_room_covers_its_title_and_its_widest_tick():
    narrow = colorbar_px("share of<br>attention", ["0.25"])
    assert narrow > COLORBAR_GAP_PX + text_px("attention", 14)
    wide = colorbar_px("share of<br>attention", ["+0.17 gained"])
    assert wide > COLORBAR_GAP_PX + 14 + text_px("+0.17 gained", 12)
    assert wide > narrow


def test_colorbar_stands_at_a_fixed_gap_from_the_plot():
    bar = colorbar("share", tickformat=".0%")
    assert (bar["x"], bar["xanchor"], bar["xpad"]) == (1.0, "left", COLORBAR_GAP_PX)
    assert bar["tickformat"] == ".0%" and bar["title"]["side"] == "top"


def test_colorbar_room_leaves_the_toolbar_its_strip():
    """plotly's vertical toolbar (shown on hover) stands in the figure's right edge: the room a colour bar asks
    for ends MODEBAR_PX before that edge, so the toolbar never covers its caption or ticks."""
    title, ticks = "share of<br>attention", ["0.25"]
    content = max(text_px("attention", 14), 14 + 6 + text_px("0.25", 12))
    assert colorbar_px(title, ticks) >= COLORBAR_GAP_PX + content + MODEBAR_PX
    assert MODEBAR_PX >= 26  # 24 px buttons, 2 px from the edge (measured in Chromium)
