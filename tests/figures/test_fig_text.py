"""changed_predictions_html: highlighting, tooltips, escaping; continuation_html: the divergence mark, newlines."""

import html
import re

import pytest
from helpers_figures import NASTY

from attnviz.figures import changed_predictions_html, continuation_html, legend_html


def test_changed_tokens_highlighted_with_tooltip():
    labels = ["The", " cat", " sat"]
    out = changed_predictions_html(labels, [False, True, False], [" cat", " sat", " on"], [" cat", " ran", " on"])
    spans = re.findall(r'<span class="(changed|same)" title="([^"]*)"[^>]*>(.*?)</span>', out)
    assert [s[0] for s in spans] == ["same", "changed", "same"]
    assert html.unescape(spans[1][1]) == "#1: full predicts ‘ sat’, budget predicts ‘ ran’"
    assert html.unescape(spans[0][1]) == "#0: both predict ‘ cat’"
    assert spans[1][2] == " cat"
    assert "1</b> of 3 next-token predictions changed" in out


def test_everything_escaped():
    out = changed_predictions_html([NASTY, "x"], [True, False], [NASTY, "a"], ["'\"<i>", "a"])
    assert NASTY not in out and "<i>" not in out
    assert "&lt;b&gt;&amp;&quot;" in out
    # the tooltip attribute cannot be broken out of
    for attr in re.findall(r'title="([^"]*)"', out):
        assert "<" not in attr and ">" not in attr
    assert (
        html.unescape(re.findall(r'title="([^"]*)"', out)[0]) == '#0: full predicts ‘<b>&"’, budget predicts ‘\'"<i>’'
    )


def test_newlines_and_single_line_output():
    out = changed_predictions_html(["a\n\nb", ""], [False, False], ["x", "\n"], ["x", "\n"])
    assert "\n" not in out  # one line: Markdown keeps it as one raw HTML block
    assert "↵<br>↵<br>" in out
    assert "both predict ‘↵’" in out
    assert "∅" in out  # empty token stays visible


def test_lengths_must_match_and_legend():
    with pytest.raises(ValueError):
        changed_predictions_html(["a"], [True, False], ["x"], ["y"])
    assert "different next token" in legend_html()
    out = changed_predictions_html(["a", "b"], [False, False], ["x", "y"], ["x", "y"], summary=False, sep=" ")
    assert "predictions changed" not in out and "</span> <span" in out


def _spans(out: str) -> list[tuple[str, str]]:
    return re.findall(r'<span style="([^"]*)">(.*?)</span>', out)


def test_continuation_outlines_the_first_divergence_only():
    spans = _spans(continuation_html([" The", " cat", " ran"], diverge=1, color="#abcdef"))
    assert [text for _, text in spans] == [" The", " cat", " ran"]
    assert [("outline" in style, "#abcdef" in style) for style, _ in spans] == [(False, False), (True, True),
                                                                              (False, False)]
    assert all("outline" not in style for style, _ in _spans(continuation_html(["a", "b"], diverge=None)))


def test_continuation_shows_newlines_and_opens_a_paragraph_without_blank_lines():
    spans = _spans(continuation_html(["\n\n", "The", " end", ".\n", "More", "\n"], diverge=0))
    assert spans[0][1] == "↵↵"  # before any text: marks only, no empty lines; the outline has something to show
    assert "outline" in spans[0][0]
    assert spans[3][1] == ".↵<br>" and spans[5][1] == "↵<br>"  # after text: a real line break
    assert "\n" not in continuation_html(["a\r\nb"])


def test_continuation_escapes_tokens():
    out = continuation_html([NASTY, "<i>"], diverge=1)
    assert NASTY not in out and "<i>" not in out and "&lt;i&gt;" in out


def test_a_token_without_a_compared_prediction_is_plain_and_not_counted():
    """The text's last token has nothing after it to score against: not counted in "N of M", no comparison shown."""
    out = changed_predictions_html(["The", " cat", " sat"], [True, False, None], [" dog", " sat", None],
                                   [" cat", " sat", None])
    assert "1</b> of 2 next-token predictions changed (50%)" in out
    spans = re.findall(r'<span class="(changed|same|unscored)" title="([^"]*)"[^>]*>(.*?)</span>', out)
    assert [s[0] for s in spans] == ["changed", "same", "unscored"]
    assert "‘" not in html.unescape(spans[2][1]) and spans[2][2] == " sat"  # no "x predicts ‘y’" comparison


def test_lines_may_break_between_tokens():
    out = changed_predictions_html(["The", "␣cat"], [False, False], ["a", "b"], ["a", "b"])
    assert "</span><wbr><span" in out
