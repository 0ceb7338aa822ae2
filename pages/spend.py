"""Spend one budget: the same total, spent evenly (uniform) or by an allocator, side by side."""

import html

import numpy as np
import streamlit as st

from attnviz import hosting
from attnviz.allocators import ALLOCATORS, Price
from attnviz.allocators.demand import demand_of_reference
from attnviz.budget import Budget, BudgetError
from attnviz.figures import allocation_map, allocator_frontier, demand_curve, value_curves
from attnviz.measure.passes import plan_budgets, validate_budgets
from attnviz.policies import POLICIES
from attnviz.teaching.spend import (
    averaged_points,
    compare_sentence,
    demand_points,
    floor_sentence,
    frontier_points,
    frontier_totals,
    mass_sentence,
    starved_rows,
    uniform_keys_per_query,
)
from ui.cached import SHARED_LAYER, get_reference, spent_rows, swept_rows
from ui.params import ALLOCATOR, drop_other_params, plugin_controls, policy_controls, seed_param
from ui.show import attempt, flow_row, live_area, load_analysis, pct
from ui.state import page_param, remember, set_value, shared_controls, sync_url

PREFIX = "sp_"
DEFAULT_POLICY = "topk"  # which links fill each count, unless the link says: the strongest
HALF_MIN_PX = 420  # the two maps side by side in a 1400 px window with the sidebar open; narrower, they stack
SHIPPED = {"lighthouses": "lighthouses.txt", "rivers": "rivers.txt"}
# The price slider: "auto" (0: the price that spends the total) or a price from 1e-5 to 1, 8 steps a decade.
PRICES = [0.0, *(float(f"{p:.3g}") for p in np.logspace(-5, 0, 41))]

controls = shared_controls(causal_only=True)
st.title("Spend one budget")
st.markdown(
    "Each word a language model reads **looks back** at earlier words, in every layer and head of the model, and "
    "every look costs work and memory: looks are a **scarce resource**. **Uniform** spending gives every word the "
    "same K looks everywhere. An **allocator** spends the *same total* unevenly, more where looks are worth more, "
    "like a market setting one **price** for attention. Does that buy better answers? Move the total and see."
)

ALLOCATOR_NAMES = [name for name, cls in ALLOCATORS.items() if not cls.uniform]
POLICY_NAMES = [name for name, cls in POLICIES.items() if not cls.reference]
allocator = page_param("sp_alloc", "price" if "price" in ALLOCATOR_NAMES else ALLOCATOR_NAMES[0])
if allocator not in ALLOCATOR_NAMES:
    st.session_state["sp_alloc"] = allocator = ALLOCATOR_NAMES[0]
policy = page_param("sp_policy", DEFAULT_POLICY)
if policy not in POLICY_NAMES:
    st.session_state["sp_policy"] = policy = DEFAULT_POLICY
page_param("sp_k", 4, int)
page_param("sp_avg", False, lambda s: s.lower() in ("1", "true", "yes"))

analysis = load_analysis(controls, layer=SHARED_LAYER)  # the start page's reference: no second forward


def _fmt(v) -> str | None:
    """A plan's fact in a few characters: numbers and short lists as they are, long lists by their range; None for
    tables (per layer and head), which the figures show."""
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, list | tuple):
        if any(isinstance(x, list | tuple) for x in v):
            return None
        if len(v) > 12:
            return f"{len(v)} values from {_fmt(min(v))} to {_fmt(max(v))}"
    return str(v)


def calibration_progress():
    """A progress callback that shows a bar only once an allocator reports calibration (most never do)."""
    slot = st.empty()

    def progress(done: int, total: int) -> None:
        slot.progress(done / max(1, total), text=f"Calibrating the allocator… {done}/{total} reruns of the model "
                                                 "(once per model and calibration text, then kept on disk)")

    return slot, progress


def price_control(cls, col) -> float:
    """The price slider, bound to the allocator's own ``tau`` parameter (kept and linked like the others)."""
    p = next(p for p in cls.parameters() if p.name == "tau")
    key = seed_param(cls, p, PREFIX, ALLOCATOR)
    options = sorted({*PRICES, float(st.session_state[key])})
    col.select_slider("Price τ: the least attention a key must get to be kept", options, key=key,
                      on_change=remember, args=(key,),
                      format_func=lambda v: "auto (spends the total)" if v == 0 else f"{v:.3g}",
                      help="Set your own price and the page spends whatever it buys (the density says how much); "
                           "'auto' finds the price at which the full model would keep exactly the total.")
    tau = float(st.session_state[key])
    sync_url(**{key: None if tau == p.default else str(tau)})
    return tau


if analysis is not None:
    ref = analysis.ref
    n, shape = ref.n_tokens, ref.shape
    query_rows = shape.layers * shape.q_heads * n
    if not 1 <= int(st.session_state["sp_k"]) <= max(2, n):  # kept from a longer text: the slider would refuse it
        set_value("sp_k", min(max(1, int(st.session_state["sp_k"])), max(2, n)))
        page_param("sp_k", 4, int)
    with flow_row():
        st.slider("Total budget, as uniform K", 1, max(2, n), key="sp_k",
                  on_change=remember, args=("sp_k",),
                  help="The total is what uniform K would spend on this text: every word keeps its K strongest "
                       "links in every layer and head (or all of them if it has fewer). The allocator spends the "
                       "same number of links in all, unevenly.")
        st.selectbox("Allocator", ALLOCATOR_NAMES, key="sp_alloc", on_change=remember, args=("sp_alloc",),
                     help="How the total is spent; each is described on the Methods page.")
        st.selectbox("Which links fill each count (policy)", POLICY_NAMES, key="sp_policy", on_change=remember,
                     args=("sp_policy",), help="The allocator decides how many links each word keeps; the policy "
                     "which ones (topk: the strongest).")
    keys = min(max(1, int(st.session_state["sp_k"])), max(2, n))
    alloc_cls, pol_cls = ALLOCATORS[allocator], POLICIES[policy]
    st.markdown(f"**{allocator}**: {html.escape(alloc_cls.summary)}")
    drop_other_params(PREFIX, [alloc_cls], group=ALLOCATOR)
    drop_other_params(PREFIX, [pol_cls])
    own = {}  # parameters the page draws itself: the price, as a slider
    cols = st.columns(3)
    if issubclass(alloc_cls, Price):
        own["tau"] = price_control(alloc_cls, cols[0])
    alloc = attempt(lambda: plugin_controls(alloc_cls, PREFIX, cols[1:2] if own else cols[:2], group=ALLOCATOR,
                                            skip=own, values=own), "The allocator")
    pol = attempt(lambda: policy_controls(pol_cls, prefix=PREFIX, columns=[cols[-1]]), "The policy")
    sync_url(sp_k=keys, sp_alloc=allocator, sp_policy=None if policy == DEFAULT_POLICY else policy)

    def spend_view() -> None:
        uniform_b, alloc_b = Budget(pol, keys=keys), Budget(pol, keys=keys, allocator=alloc)

        def run():
            validate_budgets([uniform_b, alloc_b], causal=True)  # a refused combination: one line, no pass
            plan_budgets(ref.lm, ref, [alloc_b], progress=progress)  # a calibration shows its bar; then it is kept
            return spent_rows(controls.model, controls.text, controls.max_tokens, ref, [uniform_b, alloc_b])

        calibration_note()
        slot, progress = calibration_progress()
        rows = attempt(run, "This combination")
        slot.empty()
        if rows is None:
            return
        uni, mine = rows
        show_side_by_side(uni, mine)
        show_maps(uni, mine)
        if isinstance(alloc, Price):
            show_price(mine, uni.density)
        plan = mine.plan
        if {"curve_keys", "curve_kl"} <= set(plan):
            st.markdown("##### What each layer's keys are worth")
            st.plotly_chart(value_curves(plan["curve_keys"], plan["curve_kl"], plan.get("layer_keys"),
                                         plan.get("water_level")), width="stretch")
            st.caption("Measured on the calibration text: each layer alone is budgeted and the model rerun. Water "
                       "filling gives each next key to the layer whose KL falls most, until the total is spent.")
        show_notes(uni, mine)

    def calibration_note() -> None:
        """Say so when a public server calibrates on fewer tokens or rows than asked (attnviz.hosting)."""
        if not any(p.name == "calibration" for p in alloc_cls.parameters()):
            return
        rows = getattr(alloc, "rows", None)
        n_cal, share = hosting.calibration_size(n, rows)
        if n_cal < n:
            st.info(f"This public server calibrates on at most {n_cal:,} tokens of the calibration text ({n:,} asked "
                    "for). Run attnviz on your own machine for more.", icon="✂️")
        if share != rows:
            st.info(f"This public server budgets at most {share:.0%} of the calibration text's last rows "
                    f"(rows = {rows:g} asked for). Run attnviz on your own machine for more.", icon="✂️")

    def show_side_by_side(uni, mine) -> None:
        st.markdown("##### The same total, spent two ways (quality measured on this text; density counted)")
        with flow_row(min_px=HALF_MIN_PX, key="spend_metrics"):
            for row, name in ((uni, "Uniform"), (mine, allocator)):
                with st.container():
                    st.markdown(f"**{name}** · `{row.budget.label}`")
                    with flow_row():
                        q = row.quality
                        other = uni.quality if row is mine else None
                        st.metric("KL divergence (nats)", f"{q.kl:.4f}",
                                  delta=None if other is None else f"{q.kl - other.kl:+.4f} vs uniform",
                                  delta_color="inverse", help="Measured: how far the next-word predictions drift "
                                  "from the full model's, mean KL(full ‖ budget); 0 = identical.")
                        st.metric("Top-1 agreement", pct(q.top1),
                                  delta=None if other is None else f"{100 * (q.top1 - other.top1):+.1f} pts",
                                  help="Measured: share of positions whose predicted next word is unchanged.")
                        st.metric("Perplexity", f"{q.ppl:.2f}",
                                  delta=None if other is None else f"{q.ppl - other.ppl:+.2f} vs uniform",
                                  delta_color="inverse", help=f"Measured on this text; full model {q.ppl_full:.2f}.")
                        st.metric("Density spent", pct(row.density, 2),
                                  delta=None if row is not mine else f"{100 * (row.density - uni.density):+.2f} pts",
                                  delta_color="off", help="Counted: kept / allowed query–key pairs over every "
                                  "layer and head, what was actually spent (an allocator's plan can miss the "
                                  "total by a little).")

    def show_maps(uni, mine) -> None:
        st.markdown("##### Where the links went: share kept per layer and head (counted)")
        a, b = uni.allocation.numpy(), mine.allocation.numpy()
        zmax = float(max(a.max(), b.max()))  # one colour scale: the same colour is the same share on both
        with flow_row(min_px=HALF_MIN_PX, key="spend_maps"):
            st.plotly_chart(allocation_map(a, "Uniform: the same everywhere", zmax=zmax), width="stretch")
            st.plotly_chart(allocation_map(b, f"{allocator}: spent where it chose", zmax=zmax), width="stretch")
        st.caption("Darker = more links kept. Each cell is one layer and head: the share of the links its words may "
                   "make that it kept. Uniform is flat: every layer and head keeps the same share.")
        facts = {k: _fmt(v) for k, v in mine.plan.items() if not k.startswith("curve_")}
        facts = {k: v for k, v in facts.items() if v is not None}
        if facts:
            st.caption("What the allocator decided: " + "; ".join(f"{k} = {v}" for k, v in facts.items()))

    def show_price(mine, uni_density: float) -> None:
        floor_keys = alloc.floor_keys(keys)
        demand = demand_of_reference(ref, floor_keys)
        prices, per_query = demand_points(demand, floor_keys, query_rows)
        found = alloc.tau if alloc.tau > 0 else mine.plan.get("tau")
        total = uniform_keys_per_query(n, keys)
        st.markdown("##### The price of attention")
        st.plotly_chart(demand_curve(prices, per_query, total, price_found=None if alloc.tau > 0 else found,
                                     price_set=alloc.tau if alloc.tau > 0 else None, floor_keys=floor_keys),
                        width="stretch")
        if alloc.tau > 0:
            st.info(f"Your price τ = {alloc.tau:.3g} decides the spending: the total slider now only sets the floor "
                    f"(each word's best {floor_keys} keys). This price buys {mine.density:.2%} of the links against "
                    f"uniform's {uni_density:.2%}; set the price to 'auto' to spend exactly the total.", icon="🏷️")
        st.caption(f"Counted on the full run: each key's attention probability is its value to its word; at a price "
                   f"τ a word keeps its best {floor_keys} (the floor) plus every key worth at least τ. The higher the "
                   f"price, the fewer keys are bought. The total, {total:.2f} keys per word, is bought at τ = "
                   f"{demand.price_for(total * query_rows, floor_keys):.3g}.")

    def show_notes(uni, mine) -> None:
        uq, mq = uni.quality, mine.quality
        st.markdown("##### What this text says")
        st.markdown(compare_sentence(allocator, keys, mq.kl, uq.kl, mine.density, uni.density))
        starved = tau = scarce = None
        if isinstance(alloc, Price):
            demand = demand_of_reference(ref)
            tau = alloc.tau if alloc.tau > 0 else mine.plan.get("tau")
            starved = starved_rows(demand, tau, query_rows) if tau else None
            tight = demand.price_for(uniform_keys_per_query(n, 1) * query_rows, 0)  # one key per query, no floor
            scarce = (tight, starved_rows(demand, tight, query_rows))
        share = mine.allocation.numpy()
        st.markdown(floor_sentence(starved, alloc.floor_keys(keys) if isinstance(alloc, Price) else None, tau,
                                   float(share.min()), float(share.max()), scarce))
        st.markdown(mass_sentence(allocator, mq.mass_kept, uq.mass_kept, mq.kl, uq.kl))

    def show_frontier() -> None:
        st.markdown("### Every allocator at several totals")
        st.markdown("One curve per allocator: KL to the full model (measured) against the density spent (counted), "
                    "at a few totals. A point is **efficient** (ringed) when no other point is both at least as "
                    "cheap and at least as good. Each point is a rerun of the model, so this runs only when asked.")
        a, b = st.columns([1, 3])
        # A callback, not the button's value: the flag outlives the run (later moves redraw from the kept rows).
        a.button("Compute the frontier", key="sp_frontier_go", on_click=st.session_state.update,
                 kwargs={"sp_frontier_on": True})
        b.toggle("Average over the shipped texts (mean and range)", key="sp_avg", on_change=remember,
                 args=("sp_avg",), help="One text can flatter an allocator: this reruns every budget on each shipped "
                 f"text ({', '.join(SHIPPED)}) at the same token cap and shows the mean, with the range as bars.")
        average = bool(st.session_state["sp_avg"])
        sync_url(sp_avg="1" if average else None)
        if not st.session_state.get("sp_frontier_on"):
            return
        # A public server sweeps at most HOSTED_SWEEP_TOKENS tokens of each text (its own and the shipped ones).
        cap, cut = hosting.cap(controls.max_tokens, hosting.HOSTED_SWEEP_TOKENS, "tokens in a sweep")
        if cut:
            st.info(cut, icon="✂️")
        texts = _shipped_texts() if average else {"this text": controls.text}
        refs = {}
        for name, text in texts.items():
            refs[name] = ref if text == controls.text and cap == controls.max_tokens else attempt(
                lambda t=text: get_reference(controls.model, t, cap), f"Reading {name}")
            if refs[name] is None:
                return
        n_min = min(r.n_tokens for r in refs.values())
        totals = frontier_totals(n_min, keys)
        chosen = {name: (alloc if name == allocator else cls()) for name, cls in ALLOCATORS.items()}
        budgets, names, refused = [], [], {}
        slot, progress = calibration_progress()
        for name, a_obj in chosen.items():
            for k in totals:
                b = Budget(pol, keys=k, allocator=a_obj)
                try:
                    validate_budgets([b], causal=True)
                    for r in refs.values():  # a total an allocator refuses on one text is left out on all
                        plan_budgets(ref.lm, r, [b], progress=progress)
                except BudgetError as exc:
                    refused.setdefault(name, []).append((k, str(exc)))
                    continue
                budgets.append(b)
                names.append(name)
        slot.empty()
        if refused:  # one clause per allocator: its totals left out, and why (the first reason)
            st.caption("Left out: " + "; ".join(
                f"{name}{'' if len(ks) == len(totals) else ' at K = ' + ', '.join(str(k) for k, _ in ks)} "
                f"({ks[0][1]})" for name, ks in refused.items()))
        bar = st.progress(0.0, text="Rerunning the model…")
        per_text = []
        for i, (name, text) in enumerate(texts.items()):
            def progress(done, total, i=i, name=name):
                bar.progress((i + done / total) / len(texts), text=f"{name}: {done}/{total} reruns of the model")

            got = attempt(lambda t=text, r=refs[name], p=progress: swept_rows(controls.model, t, cap, r, budgets, p),
                          "The frontier")
            if got is None:
                bar.empty()
                return
            per_text.append(got)
        bar.empty()
        if average:
            labels = [f"{b.label}" for b in budgets]
            points = averaged_points(per_text, names, labels)
            note = (f"Mean over {len(texts)} texts ({', '.join(f'{k}: {r.n_tokens} tokens' for k, r in refs.items())})"
                    "; bars from the lowest to the highest KL among them.")
        else:
            points = frontier_points(per_text[0], names)
            note = f"This text, {n_min} tokens; totals K = {', '.join(map(str, totals))}."
        st.plotly_chart(allocator_frontier(points), width="stretch")
        st.caption(note)
        kl = {(nm, b.keys): p["y"] for b, p, nm in zip(budgets, points, names, strict=True)}
        paired = [(k, kl[(allocator, k)], kl[("uniform", k)]) for k in totals
                  if (allocator, k) in kl and ("uniform", k) in kl]
        wins = [k for k, mine_kl, uni_kl in paired if mine_kl < uni_kl]
        losses = [k for k, mine_kl, uni_kl in paired if mine_kl > uni_kl]
        if wins or losses:
            st.markdown(f"`{allocator}` against uniform on {'these texts' if average else 'this text'}: "
                        + ("better at K = " + ", ".join(map(str, wins)) if wins else "better at no total")
                        + ("; worse at K = " + ", ".join(map(str, losses)) if losses else "") + " (KL, measured).")

    def _shipped_texts() -> dict[str, str]:
        from importlib import resources

        data = resources.files("attnviz") / "data"
        return {name: (data / file).read_text(encoding="utf-8") for name, file in SHIPPED.items()}

    if alloc is not None and pol is not None:
        with live_area():
            spend_view()
        show_frontier()

