"""The pages on a public server (ATTNVIZ_HOSTED=1, attnviz/hosting.py): what a visitor asks for beyond a cap is cut,
in one line, and the page goes on.  The caps are lowered here so that the runs stay short."""

import pytest

from attnviz import hosting

from .apptest import run_page


@pytest.fixture
def hosted(monkeypatch):
    monkeypatch.setenv(hosting.HOSTED_ENV, "1")
    return monkeypatch


def infos(at) -> list[str]:
    return [i.value for i in at.info]


def test_the_frontier_sweeps_at_most_its_tokens_and_budgets(hosted):
    hosted.setattr(hosting, "HOSTED_SWEEP_TOKENS", 8)
    hosted.setattr(hosting, "HOSTED_SWEEP_BUDGETS", 3)
    at = run_page("frontier", fr_policies="window,sink_window", cap=32)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("at most 8 tokens in a sweep per request; 32 were asked for" in i for i in infos(at))
    assert any("at most 3 budgets per request" in i and "last policies chosen are left out" in i for i in infos(at))
    assert any(c.value.startswith("3 budgets on 8 tokens") for c in at.caption)
    assert len(at.dataframe[0].value) == 3


def test_generate_continues_at_most_its_new_tokens(hosted):
    hosted.setattr(hosting, "HOSTED_NEW_TOKENS", 3)
    at = run_page("generate", gen_new=100)
    assert not at.exception and not at.error
    assert any("gen_new=100 is not allowed (1–3)" in w.value for w in at.warning)
    slider = at.slider(key="gen_new")
    assert slider.max == 3 and slider.value == 3
    assert "at most 3 tokens" in slider.help


def test_compress_presses_at_most_its_context_and_continues_at_most_its_new_tokens(hosted):
    hosted.setattr(hosting, "HOSTED_CONTEXT_TOKENS", 6)
    hosted.setattr(hosting, "HOSTED_NEW_TOKENS", 2)
    at = run_page("compress", cp_context=9, cp_new=30)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("at most 6 tokens of context per request; 10 were asked for" in i for i in infos(at))
    warnings = " ".join(w.value for w in at.warning)
    assert "cp_context=9 does not fit" in warnings and "cp_new=30 is not allowed (1–2)" in warnings
    assert at.slider(key="cp_context").max == 6 and at.slider(key="cp_context").value == 6
    assert at.slider(key="cp_new").max == 2


def test_spend_calibrates_on_at_most_its_tokens_and_rows(hosted):
    hosted.setattr(hosting, "HOSTED_CALIBRATION_TOKENS", 8)
    hosted.setattr(hosting, "HOSTED_CALIBRATION_ROWS", 0.5)
    at = run_page("spend", **{"sp_alloc": "marginal", "sp_alloc.marginal.rows": "1.0"})
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("calibrates on at most 8 tokens of the calibration text (11 asked for)" in i for i in infos(at))
    assert any("budgets at most 50% of the calibration text's last rows (rows = 1 asked for)" in i for i in infos(at))
    assert any("calibration_tokens = 8" in c.value for c in at.caption)


def test_spend_s_frontier_sweeps_at_most_its_tokens_of_every_text(hosted):
    hosted.setattr(hosting, "HOSTED_SWEEP_TOKENS", 16)
    at = run_page("spend", sp_avg="1", cap="32")
    at.button(key="sp_frontier_go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("at most 16 tokens in a sweep per request; 32 were asked for" in i for i in infos(at))
    assert any(c.value.startswith("Mean over 2 texts (lighthouses: 16 tokens, rivers: 16 tokens)") for c in at.caption)
