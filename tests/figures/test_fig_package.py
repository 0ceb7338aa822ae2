"""Every gallery figure builds and stays small (that no attnviz module imports Streamlit: tests/test_package.py)."""

import plotly.graph_objects as go


def test_gallery_builds_every_figure_type():
    from gallery import build

    figs = build()
    for name, fig in figs.items():
        if isinstance(fig, str):
            assert "<span" in fig
            continue
        assert isinstance(fig, go.Figure), name
        assert fig.layout.title.text, name
        assert len(fig.to_json()) <= 2 * 1024 * 1024, name
