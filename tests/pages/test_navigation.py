"""The app as a whole: app.py's navigation, its default page, and the shared sidebar controls across pages."""

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
TEXT = "The cat sat on the mat because it was tired."
PAGES = {  # url path -> title; the default page lives at "/"
    "": "Attention in one minute",
    "explore": "Explore attention",
    "budget": "Spend a budget",
    "frontier": "Quality vs compute",
    "spend": "Spend one budget",
    "generate": "Generate text",
    "inside": "Inside one attention head",
    "methods": "Methods and formulas",
}


def test_navigation_lists_all_eight_pages(monkeypatch):
    seen = []
    real = st.navigation

    def spy(pages, *args, **kwargs):
        seen.append(list(pages))
        return real(pages, *args, **kwargs)

    monkeypatch.setattr(st, "navigation", spy)
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["text"] = TEXT
    at.run()
    assert seen, "app.py did not call st.navigation"
    pages = seen[-1]
    assert {p.url_path: p.title for p in pages} == PAGES
    assert [p.url_path for p in pages if p._default] == [""]
    for p in pages:
        assert (ROOT / "pages" / f"{p.url_path or 'start'}.py").is_file()


def test_app_runs_the_start_page_by_default():
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["text"] = TEXT
    at.run()
    assert not at.exception
    assert not at.error
    assert at.title[0].value == "Attention in one minute"
    assert [m.label for m in at.metric] == ["Quality kept", "Attention compute saved", "Whole-model compute saved"]


def test_shared_controls_follow_the_user_across_pages():
    at = AppTest.from_file(APP, default_timeout=180)
    at.switch_page("pages/methods.py").run()  # a page without a model: quick
    at.text_area(key="text").set_value(TEXT).run()
    at.slider(key="max_tokens").set_value(128).run()
    assert at.selectbox(key="example").value == "custom"
    at.switch_page("pages/start.py").run()
    assert not at.exception
    assert at.text_area(key="text").value == TEXT
    assert at.slider(key="max_tokens").value == 128
    assert at.selectbox(key="example").value == "custom"
    assert "11 tokens" in at.caption[0].value
    assert at.query_params["text"] == TEXT
    assert at.query_params["cap"] == "128"


def test_a_link_with_your_own_text_reproduces_it():
    """Open the URL a user copies after typing their own text: the text, and the link itself, must survive."""
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["text"] = TEXT
    at.switch_page("pages/methods.py").run()
    assert at.text_area(key="text").value == TEXT
    assert at.selectbox(key="example").value == "custom", "the sidebar claims an example that is not the text"
    assert at.query_params.get("text") == TEXT, "the text was dropped from the URL: the link no longer reproduces"
    at.run()
    assert at.text_area(key="text").value == TEXT


def test_a_link_to_an_example_reproduces_it():
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["ex"] = "recipe"
    at.switch_page("pages/methods.py").run()
    assert at.selectbox(key="example").value == "recipe"
    assert at.text_area(key="text").value.startswith("To make pancakes")
    assert at.query_params["ex"] == "recipe"
    assert "text" not in at.query_params


LONG_TEXT = "The keeper climbed the stairs at dusk and lit the lamp. " * 54  # 3,024 characters
CJK_TEXT = "灯塔守护者每天黄昏爬上楼梯点亮灯。风很大，海很黑，但光一直在转。" * 60  # 1,920 characters


def _link_of(text: str) -> dict[str, str]:
    """The URL parameters a user has after typing ``text`` (on a page without a model: quick)."""
    at = AppTest.from_file(APP, default_timeout=180)
    at.switch_page("pages/methods.py").run()
    at.text_area(key="text").set_value(text).run()
    assert not at.exception
    return dict(at.query_params)


@pytest.mark.parametrize("text", [LONG_TEXT, CJK_TEXT], ids=["3000-chars", "cjk"])
def test_a_link_carries_a_long_text(text):
    """Over URL_TEXT_LIMIT characters the text travels compressed (textz); the receiver gets it whole."""
    params = _link_of(text)
    assert "textz" in params and "text" not in params
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params.update(params)
    at.switch_page("pages/methods.py").run()
    assert not at.exception
    assert at.text_area(key="text").value == text
    assert at.selectbox(key="example").value == "custom"
    assert not at.sidebar.info and not at.sidebar.warning
    assert at.query_params["textz"] == params["textz"]  # the receiver's own link still carries it


def test_a_text_too_long_for_a_link_says_so():
    import random

    rng = random.Random(0)
    noise = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(20_000))
    at = AppTest.from_file(APP, default_timeout=180)
    at.switch_page("pages/methods.py").run()
    at.text_area(key="text").set_value(noise).run()
    assert not at.exception
    assert "text" not in at.query_params and "textz" not in at.query_params
    assert any("link does not carry this text" in i.value for i in at.sidebar.info)


def test_a_damaged_long_text_link_gives_a_clear_message():
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["textz"] = "eJzLSM3JyVcozy"  # cut short while copying
    at.switch_page("pages/methods.py").run()
    assert not at.exception
    assert any("could not be read" in w.value for w in at.sidebar.warning)
    assert at.selectbox(key="example").value != "custom"  # the default example instead
