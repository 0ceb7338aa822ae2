"""One colour rule for every attention or statistic scale: darker = more (a light-to-dark sequential scale)."""

import numpy as np
import plotly.colors as pc
import pytest
from helpers_figures import causal_attention

from attnviz.figures import attention_heatmap, head_grid, head_stat_heatmap, keep_mask_heatmap, matrix_figure


def _luminance(colour: str) -> float:
    """Relative luminance (WCAG) of a plotly colour string (hex or rgb(...)), 0 = black, 1 = white."""
    r, g, b = pc.hex_to_rgb(colour) if colour.startswith("#") else pc.unlabel_rgb(colour)
    lin = [(v / 255) / 12.92 if v / 255 <= 0.03928 else ((v / 255 + 0.055) / 1.055) ** 2.4 for v in (r, g, b)]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def assert_darker_is_more(trace) -> None:
    """The trace's colour scale gets darker at every stop from its low end to its high end, from near white."""
    stops = [c for _, c in trace.colorscale]
    lum = [_luminance(c) for c in stops]
    if trace.reversescale:
        lum = lum[::-1]
    assert all(a > b for a, b in zip(lum, lum[1:], strict=False)), f"not light-to-dark: {stops}"
    assert lum[0] > 0.85, f"the lowest value is not near white: {stops[0]}"


def _thumbs(layers, heads, s):
    return np.array([[causal_attention(s, seed=10 * li + h) for h in range(heads)] for li in range(layers)])


def test_head_grid_darker_is_more_and_says_so():
    fig = head_grid(_thumbs(3, 4, 8))
    assert_darker_is_more(fig.data[0])
    assert "darker = more" in fig.data[0].colorbar.title.text
    # the gaps between tiles stay distinguishable from a tile of zeros (which is now white)
    assert fig.layout.plot_bgcolor not in (None, "white", "#fff", "#ffffff")


@pytest.mark.parametrize("stat", ["entropy (nats)", "share on the first token"])
def test_head_statistics_darker_is_larger_and_say_so(stat):
    fig = head_stat_heatmap(np.arange(12, dtype=float).reshape(3, 4), stat)
    assert_darker_is_more(fig.data[0])
    assert "darker = larger" in fig.data[0].colorbar.title.text


def test_every_attention_figure_follows_the_rule():
    m = causal_attention(6)
    assert_darker_is_more(attention_heatmap(m).data[0])
    assert_darker_is_more(matrix_figure(m).data[0])  # softmax weights on the Inside page
    keep = keep_mask_heatmap(np.tril(np.ones((300, 300), dtype=bool)), max_side=50)
    assert_darker_is_more(keep.data[0])
