"""The "Inside one attention head" page, run headless with Streamlit's AppTest. No model is loaded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")

pytestmark = pytest.mark.usefixtures("no_model_loading")  # the page is instant: loading a model is a failure


def open_page(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for name, value in query.items():
        at.query_params[name] = value
    at.switch_page("pages/inside.py")
    at.run(timeout=60)
    assert not at.exception, at.exception
    return at


def chart_text(at: AppTest, key: str) -> list[list[str]]:
    """The numbers written in the cells of the plotly chart with ``key`` (the last trace holds the values)."""
    for chart in at.get("plotly_chart"):
        if chart.proto.id.endswith(key):
            return json.loads(chart.proto.spec)["data"][-1]["text"]
    raise AssertionError(f"no chart {key}")


def numbers(cells: list[list[str]]) -> np.ndarray:
    """Cell texts as floats; masked cells (empty text) are NaN."""
    return np.array([[float(c.replace("−", "-")) if c else np.nan for c in row] for row in cells])


def markdown(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_page_runs_with_every_widget_and_step():
    at = open_page()
    assert at.text_input(key="inside_tokens").value == "the cat sat"
    assert at.number_input(key="inside_d").value == 4
    assert at.toggle(key="inside_causal").value is False
    assert at.toggle(key="inside_budget").value is False
    editors = [e.key for e in at.get("data_editor")]
    assert len(editors) == 3 and all(k.startswith(f"inside_{n}_editor") for k, n in zip(editors, "qkv", strict=True))
    labels = [b.label for b in at.button]
    assert "Reset to the example" in labels and any("article" in label for label in labels)
    for step in range(1, 6):
        chart_text(at, f"inside_step_{step}")
    text = markdown(at)
    for title in ("Step 1", "Step 2", "Step 3", "Step 4", "Step 5"):
        assert title in text
    # default example: scores and a weights matrix whose rows sum to 1
    assert numbers(chart_text(at, "inside_step_1")).tolist() == [[0, 1, 0], [1, 0, 1], [0, 3, 1]]
    np.testing.assert_allclose(numbers(chart_text(at, "inside_step_4")).sum(1), 1, atol=2e-3)


def test_worked_example_and_seed_module_are_shown_correctly():
    at = open_page()
    table = at.table[0].value
    assert table.loc["Softmax weight", "Our kernel computes"] == "1"
    assert table.loc["Output", "Our kernel computes"] == "[0.5, 0.6, 0.7, 0.8]"
    assert table.loc["Output", "The article says"] == "[0.125, 0.18, 0.245, 0.32]"
    code = at.code[0].value
    assert "class SeedAttention" in code and "math.sqrt(self.d_k)" in code
    text = markdown(at)
    assert "√3" in text and "5×3" in text and "RuntimeError" in text
    assert len(at.get("plotly_chart")) == 7  # five steps, the module's output and its weights
    assert numbers(chart_text(at, "inside_seed_output")).shape == (5, 3)
    weights = numbers(chart_text(at, "inside_seed_weights"))
    assert weights.shape == (5, 5)
    np.testing.assert_allclose(weights.sum(1), 1, atol=3e-3)
    before = chart_text(at, "inside_seed_output")
    at.number_input(key="inside_seed").set_value(1).run(timeout=60)
    assert not at.exception and chart_text(at, "inside_seed_output") != before


def test_causal_toggle_changes_the_numbers():
    at = open_page()
    before = numbers(chart_text(at, "inside_step_4"))
    assert not np.isnan(numbers(chart_text(at, "inside_step_3"))).any()
    at.toggle(key="inside_causal").set_value(True).run(timeout=60)
    assert not at.exception
    after = numbers(chart_text(at, "inside_step_4"))
    assert not np.allclose(before, after)
    assert after[0].tolist() == [1, 0, 0]  # "the" can only look at itself
    assert np.isnan(numbers(chart_text(at, "inside_step_3"))[0, 1:]).all()  # −∞ cells carry no number
    assert "causal" in markdown(at)
    assert at.query_params["inside_causal"] == "True"  # the link reproduces this view


def test_top_k_budget_keeps_k_keys_per_word():
    at = open_page()
    at.toggle(key="inside_budget").set_value(True).run(timeout=60)
    assert not at.exception
    at.slider(key="inside_topk").set_value(1).run(timeout=60)
    assert not at.exception
    weights = numbers(chart_text(at, "inside_step_4"))
    assert ((weights > 0).sum(1) == 1).all() and np.allclose(weights.max(1), 1)
    at.slider(key="inside_topk").set_value(3).run(timeout=60)
    assert ((numbers(chart_text(at, "inside_step_4")) > 0).sum(1) == 3).all()


def test_changing_tokens_and_size_reshapes_every_step():
    at = open_page()
    at.text_input(key="inside_tokens").set_value("a b c d").run(timeout=60)
    at.number_input(key="inside_d").set_value(2).run(timeout=60)
    assert not at.exception
    assert numbers(chart_text(at, "inside_step_4")).shape == (4, 4)
    assert numbers(chart_text(at, "inside_step_5")).shape == (4, 2)
    assert "Step 2 · Scale by 1/√d = 1/√2" in markdown(at)


def test_values_from_a_link_are_used():
    """Edited values round-trip through the URL: a link with Q, K, V reproduces the same numbers."""
    at = open_page(inside_tokens="x y", inside_d="2", inside_q="1,0;0,1", inside_k="2,0;0,2", inside_v="1,2;3,4")
    assert numbers(chart_text(at, "inside_step_1")).tolist() == [[2, 0], [0, 2]]
    e = np.exp(2 / np.sqrt(2))
    np.testing.assert_allclose(numbers(chart_text(at, "inside_step_4"))[0], [e / (e + 1), 1 / (e + 1)], atol=1e-3)
    assert at.query_params["inside_q"] == "1,0;0,1"


def test_a_broken_link_falls_back_to_the_example():
    at = open_page(inside_q="not numbers", inside_d="99")
    assert numbers(chart_text(at, "inside_step_1")).tolist() == [[0, 1, 0], [1, 0, 1], [0, 3, 1]]


def test_loading_the_articles_example_gives_weight_one_and_output_v():
    at = open_page()
    next(b for b in at.button if "article" in b.label).click().run(timeout=60)
    assert not at.exception
    assert at.text_input(key="inside_tokens").value == "apple"
    assert numbers(chart_text(at, "inside_step_4")).tolist() == [[1.0]]
    assert numbers(chart_text(at, "inside_step_5")).tolist() == [[0.5, 0.6, 0.7, 0.8]]
    next(b for b in at.button if b.label == "Reset to the example").click().run(timeout=60)
    assert numbers(chart_text(at, "inside_step_1")).tolist() == [[0, 1, 0], [1, 0, 1], [0, 3, 1]]


def test_the_token_legend_is_shown():
    from attnviz.inspection.tokens import TOKEN_LEGEND

    at = open_page()
    assert TOKEN_LEGEND in [c.value for c in at.caption]


def test_the_corrected_essay_is_named():
    """The page corrects an essay's worked example and code: it says which essay, and in which language."""
    at = open_page()
    text = markdown(at)
    assert "Rethinking attention economics in the AI era" in text
    assert "in Chinese" in text


def test_every_control_round_trips_through_the_link():
    """Tokens, size, causal mask, budget and its K, the Q/K/V cells, the seed and the code tab open at the link's
    values, and changing each through its widget writes the new value back to the link."""
    at = open_page(inside_tokens="a b c", inside_d="2", inside_causal="true", inside_budget="true", inside_topk="2",
                   inside_q="1,0;0,1;1,1", inside_k="2,0;0,2;1,0", inside_v="1,2;3,4;5,6", inside_seed="5",
                   inside_code="original")
    assert not at.error and not at.warning
    assert at.text_input(key="inside_tokens").value == "a b c"
    assert at.number_input(key="inside_d").value == 2
    assert at.toggle(key="inside_causal").value is True
    assert at.toggle(key="inside_budget").value is True
    assert at.slider(key="inside_topk").value == 2
    assert at.number_input(key="inside_seed").value == 5
    assert at.session_state["inside_code"] == "The article's original code"
    assert numbers(chart_text(at, "inside_step_1")).tolist() == [[2, 0, 1], [0, 2, 0], [2, 2, 1]]

    at.text_input(key="inside_tokens").set_value("a b c d").run(timeout=60)
    at.number_input(key="inside_d").set_value(3).run(timeout=60)
    at.toggle(key="inside_causal").set_value(False).run(timeout=60)
    at.slider(key="inside_topk").set_value(3).run(timeout=60)
    at.number_input(key="inside_seed").set_value(6).run(timeout=60)
    editor = next(k for k in at.session_state if str(k).startswith("inside_q_editor_"))  # the cells' table
    at.session_state[editor] = {"edited_rows": {0: {"1": 7}}, "added_rows": [], "deleted_rows": []}
    at.session_state["_keep_inside_code"] = "The corrected code (this exact code runs below)"  # what a tab click keeps
    at.run(timeout=60)
    assert not at.exception and not at.error
    query = dict(at.query_params)
    assert {k: query.get(k) for k in ("inside_tokens", "inside_d", "inside_causal", "inside_budget", "inside_topk",
                                      "inside_seed", "inside_code")} == {
        "inside_tokens": "a b c d", "inside_d": "3", "inside_causal": None, "inside_budget": "True",
        "inside_topk": "3", "inside_seed": "6", "inside_code": None}
    assert query["inside_q"].startswith("7,0,0;")
    at.toggle(key="inside_budget").set_value(False).run(timeout=60)
    assert "inside_budget" not in at.query_params and "inside_topk" not in at.query_params
