"""The package imports without Streamlit, and every gallery figure builds and stays small."""

import subprocess
import sys

import plotly.graph_objects as go


def test_no_streamlit_import():
    code = "import sys, attnviz.figures; assert 'streamlit' not in sys.modules, 'streamlit imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


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
