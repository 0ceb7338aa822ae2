"""'Spend one budget' page, run headless with Streamlit's AppTest on an 11-token text."""

import base64
import json

import numpy as np

from tests.pages.apptest import metrics, run_page


def charts(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def z_of(spec: dict) -> np.ndarray:
    """A heatmap's cells (plotly sends numpy arrays as typed base64)."""
    z = spec["data"][0]["z"]
    if isinstance(z, dict):
        shape = [int(s) for s in str(z["shape"]).split(",")]
        return np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(shape)
    return np.asarray(z, dtype=float)


def linked(at, key: str) -> str | None:
    """A link parameter's value (AppTest may hold it as a string or as a one-item list)."""
    v = at.query_params.get(key)
    return v[0] if isinstance(v, list) else v


def values(at) -> list[str]:
    return [m.value for m in at.metric]


def test_the_page_shows_uniform_and_the_allocator_side_by_side():
    at = run_page("spend")
    assert not at.exception and not at.error
    assert at.title[0].value == "Spend one budget"
    assert at.slider(key="sp_k").value == 4
    assert at.selectbox(key="sp_alloc").value == "price"
    assert "uniform" not in at.selectbox(key="sp_alloc").options  # it is the other side of the comparison
    assert {"pyramid", "heads", "price"} <= set(at.selectbox(key="sp_alloc").options)
    assert list(metrics(at)) == ["KL divergence (nats)", "Top-1 agreement", "Perplexity", "Density spent"]
    assert len(at.metric) == 8  # four for uniform, four for the allocator
    maps, demand = charts(at)[:2], charts(at)[2]
    uniform, mine = z_of(maps[0]), z_of(maps[1])
    assert uniform.shape == mine.shape == (30, 9)
    assert np.ptp(uniform) < 1e-6 and np.ptp(mine) > 0.01  # uniform is flat, the price is not
    assert maps[0]["data"][0]["zmax"] == maps[1]["data"][0]["zmax"]  # one colour scale for both
    assert demand["layout"]["xaxis"]["type"] == "log"
    said = " ".join(m.value for m in at.markdown)
    assert "Where allocation helps" in said and "Why a floor matters" in said and "mass kept is not" in said


def test_a_move_of_the_total_changes_the_numbers_and_the_map():
    at = run_page("spend")
    before, map_before = values(at), z_of(charts(at)[1])
    at.slider(key="sp_k").set_value(7).run()
    assert not at.exception and not at.error
    assert values(at) != before
    assert not np.allclose(z_of(charts(at)[1]), map_before)
    assert linked(at, "sp_k") == "7"


def test_every_control_round_trips_through_the_link():
    link = {"sp_k": "6", "sp_alloc": "pyramid", "sp_policy": "sink_window", "sp_alloc.pyramid.slope": "-0.25",
            "sp_param.sink_window.sinks": "2", "sp_avg": "1"}
    at = run_page("spend", **link)
    assert not at.exception and not at.error
    assert at.slider(key="sp_k").value == 6
    assert at.selectbox(key="sp_alloc").value == "pyramid"
    assert at.selectbox(key="sp_policy").value == "sink_window"
    assert at.number_input(key="sp_alloc.pyramid.slope").value == -0.25
    assert at.number_input(key="sp_param.sink_window.sinks").value == 2
    assert at.toggle(key="sp_avg").value is True
    assert {k: linked(at, k) for k in link} == link
    assert "pyramid s=-0.25" in " ".join(m.value for m in at.markdown)

    price = {"sp_alloc": "price", "sp_alloc.price.tau": "0.0178", "sp_alloc.price.floor": "0.5"}
    at = run_page("spend", **price)
    assert not at.exception and not at.error
    assert at.select_slider(key="sp_alloc.price.tau").value == 0.0178
    assert at.number_input(key="sp_alloc.price.floor").value == 0.5
    assert {k: linked(at, k) for k in price} == price
    assert at.info[0].value.startswith("Your price τ = 0.0178 decides the spending")
    at.number_input(key="sp_alloc.price.floor").set_value(0.25).run()  # back to the default: out of the link
    assert "sp_alloc.price.floor" not in at.query_params
    # Another allocator's parameters say nothing about this view.
    at.selectbox(key="sp_alloc").set_value("heads").run()
    assert "sp_alloc.price.tau" not in at.query_params and linked(at, "sp_alloc") == "heads"


def test_a_bad_link_value_is_one_warning_and_the_default():
    at = run_page("spend", **{"sp_alloc": "price", "sp_alloc.price.floor": "7"})
    assert not at.exception and not at.error
    assert [w.value for w in at.warning] == [
        "The link's allocator 'price': parameter floor must be a number from 0 to 1, got 7.0; using 0.25 instead."]


def test_a_refused_combination_is_one_line_not_a_traceback():
    at = run_page("spend", sp_policy="h2o")
    assert not at.exception
    assert len(at.error) == 1
    message = at.error[0].value
    assert "allocator 'price'" in message and "h2o" in message and "\n" not in message
    assert not at.metric and not at.get("plotly_chart")


def test_the_frontier_runs_only_when_asked():
    at = run_page("spend")
    assert len(charts(at)) == 3
    at.button(key="sp_frontier_go").click().run()
    assert not at.exception and not at.error
    frontier = charts(at)[-1]
    names = {t["name"] for t in frontier["data"]}
    assert {"uniform", "pyramid", "heads", "price", "marginal", "efficient (Pareto) point"} <= names
    assert any(c.value.startswith("Left out: duo (allocator 'duo'") for c in at.caption)  # it needs sink_window


def test_the_frontier_averages_over_the_shipped_texts_with_their_range():
    at = run_page("spend", sp_avg="1", cap="32")  # two 32-token texts keep it quick
    at.button(key="sp_frontier_go").click().run()
    assert not at.exception and not at.error
    frontier = charts(at)[-1]
    curves = [t for t in frontier["data"] if t["name"] in ("uniform", "price")]
    assert len(curves) == 2 and all("error_y" in t for t in curves)  # mean, with the range over the texts
    assert any(c.value.startswith("Mean over 2 texts (lighthouses: 32 tokens, rivers: 32 tokens)") for c in at.caption)


def test_marginal_draws_each_layer_s_value_curve_with_the_water_level():
    """Drawn from the row's plan (curve_keys, curve_kl, layer_keys, water_level), not from the allocator's name."""
    at = run_page("spend", sp_alloc="marginal")
    assert not at.exception and not at.error
    curves = charts(at)[2]
    assert curves["layout"]["title"]["text"].startswith("What each layer's keys are worth")
    assert "water level" in curves["layout"]["title"]["text"]
    assert sum(t["name"].startswith("layer ") for t in curves["data"]) == 30
    assert at.selectbox(key="sp_alloc.marginal.calibration").value == "auto"


def test_duo_with_its_own_policy_runs_and_with_another_is_one_line():
    at = run_page("spend", sp_alloc="duo", sp_k=8)
    assert not at.exception and len(at.error) == 1 and "needs policy sink_window" in at.error[0].value
    at.selectbox(key="sp_policy").set_value("sink_window").run()
    assert not at.exception and not at.error
    assert len(at.metric) == 8
    at.slider(key="sp_k").set_value(4).run()  # no room beside S=4 sinks: one line again
    assert not at.exception and len(at.error) == 1 and "needs more keys than sinks" in at.error[0].value


def test_the_start_page_links_here():
    at = run_page("start")
    assert any(link.proto.page == "spend" for link in at.get("page_link"))


def test_a_shorter_text_after_the_largest_total_gives_no_traceback():
    """The total at its end (K = n) and then a shorter text: the slider's value was above its new maximum and the
    page stopped with StreamlitValueAboveMaxError (found by the memory soak). The total now shrinks to fit."""
    at = run_page("spend")
    at.slider(key="sp_k").set_value(11).run()  # every token of the 11-token text
    assert not at.exception
    at.text_area(key="text").set_value("The cat sat down.").run()  # 5 tokens
    assert not at.exception and not at.error
    assert at.slider(key="sp_k").value == at.slider(key="sp_k").max == 5
    assert linked(at, "sp_k") == "5"
