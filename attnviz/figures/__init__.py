"""Plotly figures for attnviz: plain functions from numpy arrays / Python values to ``go.Figure``.

No Streamlit here: pages call these and hand the result to ``st.plotly_chart``
(or, for :mod:`.text`, to ``st.markdown(..., unsafe_allow_html=True)`` / ``st.html``).

Find a figure by file name:

* ``heatmap.py`` — query × key heatmaps: attention, budget − full difference, keep mask
* ``grid.py``    — every head as thumbnails in one figure; per-head statistics table
* ``lines.py``   — bertviz-style lines from selected query tokens to the keys they attend to
* ``budget.py``  — quality/compute frontier, attention share vs context length, metric bars
* ``allocation.py`` — one total spent: layers × heads allocation map, demand curve, value curves, frontier
* ``text.py``    — HTML text with tokens whose prediction changed under the budget; a continuation
* ``steps.py``   — small annotated matrices for the "inside one attention layer" page
* ``pooling.py`` — block-average big matrices down to a displayable size
"""

from ._common import title_text
from .allocation import allocation_map, allocator_frontier, demand_curve, value_curves
from .budget import attention_share_plot, frontier_plot, metric_bar
from .grid import head_grid, head_stat_heatmap
from .heatmap import attention_heatmap, difference_heatmap, keep_mask_heatmap
from .lines import token_lines
from .pooling import pool_factor, pool_matrix
from .steps import matrix_figure
from .text import changed_predictions_html, continuation_html, legend_html

__all__ = [
    "allocation_map",
    "allocator_frontier",
    "demand_curve",
    "value_curves",
    "attention_heatmap",
    "attention_share_plot",
    "changed_predictions_html",
    "continuation_html",
    "difference_heatmap",
    "frontier_plot",
    "head_grid",
    "head_stat_heatmap",
    "keep_mask_heatmap",
    "legend_html",
    "matrix_figure",
    "metric_bar",
    "pool_factor",
    "pool_matrix",
    "title_text",
    "token_lines",
]
