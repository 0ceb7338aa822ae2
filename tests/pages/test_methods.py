"""'Methods and formulas' page, run headless with Streamlit's AppTest (it loads no model)."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from attnviz.allocators import ALLOCATORS
from attnviz.policies import POLICIES
from attnviz.presses import PRESSES

APP = str(Path(__file__).resolve().parents[2] / "app.py")

pytestmark = pytest.mark.usefixtures("no_model_loading")


def test_methods_page_explains_every_policy_and_metric():
    at = AppTest.from_file(APP, default_timeout=180)
    at.switch_page("pages/methods.py").run()
    assert not at.exception
    assert not at.error
    assert at.title[0].value == "Methods and formulas"
    text = "\n".join(m.value for m in at.markdown)
    for heading in ("### A budget", "### Policies", "### Quality (measured)", "### Compute and memory (counted)"):
        assert heading in text
    for name in [*POLICIES, *ALLOCATORS, *PRESSES]:
        assert f"**`{name}`**" in text
    assert "### Allocators: spending one total" in text and "### Presses: compressing" in text
    assert "score every pair" in text and "reads every probability" in text  # heads and price are charged
    for metric in ("KL divergence", "Top-1 agreement", "Perplexity", "Density", "Attention FLOPs", "KV cache"):
        assert metric in text
    assert at.selectbox(key="model")  # the shared sidebar controls are drawn on every page
    assert at.text_area(key="text")
