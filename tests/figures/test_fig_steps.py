"""matrix_figure: numbers in cells, masked cells as −∞, colour scale choice."""

import numpy as np
import plotly.graph_objects as go
import pytest
from helpers_figures import NASTY

from attnviz.figures import matrix_figure


def test_weights_matrix_numbers_in_cells():
    w = np.array([[1.0, 0.0], [0.25, 0.75]])
    fig = matrix_figure(w, ["the", "the"], ["the", "cat"], "Softmax weights", fmt=".2f", x_title="key", y_title="query")
    assert isinstance(fig, go.Figure)
    tr = fig.data[-1]
    assert tr.texttemplate == "%{text}"
    assert tr.text.tolist() == [["1.00", "0.00"], ["0.25", "0.75"]]
    assert tr.zmin == 0  # sequential scale from 0
    assert fig.layout.title.text == "Softmax weights"
    assert fig.layout.xaxis.title.text == "key" and fig.layout.yaxis.title.text == "query"
    assert len(fig.layout.yaxis.tickvals) == 2 and list(fig.layout.yaxis.ticktext) == ["the", "the"]
    assert "query %{y}, key %{x}" in tr.hovertemplate


def test_signed_matrix_diverging_symmetric_and_typographic_minus():
    m = np.array([[-2.0, 1.0], [0.5, 0.0]])
    tr = matrix_figure(m, title="QKᵀ").data[-1]
    assert tr.zmid == 0 and tr.zmin == -tr.zmax == -2.0
    assert tr.text[0][0] == "−2.000"


def test_mask_and_neg_inf_shown_as_grey_minus_infinity():
    s = np.array([[0.3, -np.inf, 1.0], [0.1, 0.2, 0.4]])
    mask = np.array([[False, False, True], [False, False, False]])
    fig = matrix_figure(s, mask=mask, title="masked")
    masked, values = fig.data
    assert masked.name == "masked" and values.name == "values"
    assert masked.text.tolist() == [["", "−∞", "−∞"], ["", "", ""]]
    assert np.isnan(values.z[0, 1]) and np.isnan(values.z[0, 2]) and values.z[1, 2] == pytest.approx(0.4)
    assert values.text[0][2] == ""
    assert "−∞" in masked.hovertemplate


def test_labels_escaped_and_checked():
    fig = matrix_figure(np.ones((2, 2)), [NASTY, "x"], ["a", "b"])
    assert fig.layout.yaxis.ticktext[0] == '&lt;b&gt;&amp;"'
    with pytest.raises(ValueError):
        matrix_figure(np.ones((2, 2)), ["only one"])
    with pytest.raises(ValueError):
        matrix_figure(np.ones((2, 2)), mask=np.ones((3, 3), bool))
