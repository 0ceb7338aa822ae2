"""Spend a budget: pick a policy and a size, rerun the real model, see quality and compute move together."""

import html
import json

import streamlit as st

from attnviz.budget import Budget
from attnviz.figures import attention_heatmap, changed_predictions_html, difference_heatmap
from attnviz.figures.heatmap import shared_zmax
from attnviz.inspection.tokens import token_labels
from attnviz.policies import POLICIES
from ui.cached import SHARED_LAYER, get_row
from ui.params import drop_other_params, policy_controls
from ui.show import attempt, flow_row, live_area, load_analysis, pct, si, token_legend
from ui.state import page_param, remember, set_value, shared_controls, sync_url

HALF_WIDTH_TICKS = 20  # key labels that fit, turned 60°, under a heatmap half the page wide (1400 px window)
HALF_MIN_PX = 420  # the two heatmaps share a 1400 px window (sidebar open) side by side; narrower, they stack

controls = shared_controls()
st.title("Spend an attention budget")
st.markdown(
    "Choose **how** keys are dropped (the policy) and **how many** are kept (the budget). The model reruns with "
    "that budget in every layer and head, and the page compares it with full attention. "
    "**Measured** numbers come from the rerun; **counted** numbers from the formulas on the *Methods* page."
)

POLICY_NAMES = [name for name, cls in POLICIES.items() if not cls.reference]
policy = page_param("policy", "topk")
if policy not in POLICY_NAMES:
    st.session_state["policy"] = policy = "topk"
# Layers and heads are numbered from 1 on screen and in links (as on the other pages).
page_param("layer", SHARED_LAYER + 1, int)
page_param("head", 9, int)
mode = page_param("mode", "keys")
# Each policy starts at its own size (top-p at p = 0.9, not at the 0.25 share another policy uses), unless the
# link gives one; switching policy resets the sizes to the new policy's (on_policy).
keys_value = page_param("k", POLICIES[policy].default_keys or 16, int)
ratio_value = page_param("r", POLICIES[policy].default_ratio, float)


def on_policy() -> None:
    """Selectbox callback: remember the policy and start it at its own default sizes."""
    remember("policy")
    cls = POLICIES[st.session_state["policy"]]
    if cls.default_keys is not None:
        set_value("k", cls.default_keys)
    set_value("r", cls.default_ratio)


analysis = None
with st.container():
    c1, c2 = st.columns([2, 3])
    c1.selectbox("Policy", POLICY_NAMES, key="policy", on_change=on_policy,
                 help="How the kept keys are chosen; each policy is defined on the Methods page.")
    policy = st.session_state["policy"]
    c2.markdown(f"<div style='padding-top:2.1rem'>{html.escape(POLICIES[policy].summary)}</div>",
                unsafe_allow_html=True)
    analysis = load_analysis(controls, layer=max(0, min(int(st.session_state["layer"]) - 1, 100)))

if analysis is not None:
    ref = analysis.ref
    n, shape = ref.n_tokens, ref.shape
    if not 1 <= st.session_state["layer"] <= shape.layers:
        st.session_state["layer"] = min(max(1, st.session_state["layer"]), shape.layers)
    if not 1 <= st.session_state["head"] <= shape.q_heads:
        st.session_state["head"] = min(max(1, st.session_state["head"]), shape.q_heads)
    pol_cls = POLICIES[policy]

    @st.fragment
    def budget_view() -> None:
        with live_area():
            budget_parts()

    def budget_parts() -> None:
        a, b, c, d = st.columns(4)
        if pol_cls.ratio_only:
            st.session_state["mode"] = "ratio"
        a.radio("Budget as", ["keys", "ratio"], key="mode", horizontal=True, on_change=remember, args=("mode",),
                disabled=pol_cls.ratio_only, format_func={"keys": "keys per query (K)", "ratio": "share of keys"}.get)
        keys = ratio = None
        # Links made before parameters had keys of their own said sinks= and seed=.
        drop_other_params("", [pol_cls])
        pol = policy_controls(pol_cls, columns=[d], legacy={"sinks": "sinks", "seed": "seed"})
        if st.session_state["mode"] == "keys":
            low = pol.min_keys
            high = max(n, low + 1)
            if not low <= st.session_state["k"] <= high:
                st.session_state["k"] = min(max(low, pol_cls.default_keys or 16), high)
            b.slider("Keys kept per query, K", low, high, key="k", on_change=remember, args=("k",))
            keys = int(st.session_state["k"])
        else:
            symbol = pol_cls.ratio_symbol
            label = f"Attention mass {symbol}" if pol_cls.ratio_only else f"Share of each query's keys, {symbol}"
            b.slider(label, 0.01, 1.0, key="r", step=0.01, on_change=remember, args=("r",))
            ratio = float(st.session_state["r"])
        c.number_input("Layer", 1, shape.layers, key="layer", on_change=remember, args=("layer",))
        c.number_input("Head", 1, shape.q_heads, key="head", on_change=remember, args=("head",))
        layer, head = int(st.session_state["layer"]) - 1, int(st.session_state["head"]) - 1
        sync_url(policy=policy, mode=st.session_state["mode"], k=keys, r=ratio, layer=layer + 1, head=head + 1,
                 sinks=None, seed=None)  # (the old keys: policy_controls keeps the parameters now)

        budget = Budget(pol, keys=keys, ratio=ratio)
        row = attempt(lambda: get_row(controls.model, controls.text, controls.max_tokens, budget, layer=layer),
                      "Running the budget")
        if row is None:
            return
        show_metrics(row, ref)
        full_w = analysis_weights(layer, head)
        budget_w = row.weights[layer][head].float().numpy()
        labels = analysis.labels
        # One colour scale for both: the same colour means the same weight on the left and on the right.
        half = dict(max_x_ticks=HALF_WIDTH_TICKS, zmax=shared_zmax(full_w, budget_w))
        with flow_row(min_px=HALF_MIN_PX, key="budget_pair"):  # side by side, or one under the other if squeezed
            st.plotly_chart(attention_heatmap(full_w, labels, labels, title=f"Full attention · layer {layer + 1}, "
                                              f"head {head + 1}", **half), width="stretch")
            st.plotly_chart(attention_heatmap(budget_w, labels, labels, title=f"{row.budget.label} · layer "
                                              f"{layer + 1}, head {head + 1}", **half), width="stretch")
        st.plotly_chart(difference_heatmap(full_w, budget_w, labels, labels,
                                           title="Budget minus full: where attention moved"), width="stretch")
        token_legend()
        if row.top1 is not None:
            show_changed_predictions(row, ref)
        export(row)

    def analysis_weights(layer: int, head: int):
        from ui.cached import get_analysis

        full = get_analysis(controls.model, controls.text, controls.max_tokens, layer)
        return full.ref.weights[layer][head].float().numpy()

    def show_metrics(row, ref) -> None:
        q, c = row.quality, row.compute
        st.markdown("##### Quality (measured on this text)")
        with flow_row():
            quality_metrics(q)
        st.markdown("##### Compute and memory (counted from formulas, except time)")
        with flow_row():
            compute_metrics(row, c)

    def quality_metrics(q) -> None:
        if q.kl is not None:
            st.metric("KL divergence (nats)", f"{q.kl:.4f}", delta=f"{q.kl:+.4f} vs full",
                      delta_color="inverse",
                      help="Mean KL(full ‖ budget) of the next-token distributions; 0 = identical.")
            st.metric("Top-1 agreement", pct(q.top1), delta=f"{100 * (q.top1 - 1):+.1f} pts",
                      help="Share of positions where the predicted next token is unchanged.")
            st.metric("Perplexity", f"{q.ppl:.2f}",
                      delta=f"{q.ppl - q.ppl_full:+.2f} vs {q.ppl_full:.2f}", delta_color="inverse",
                      help="exp(mean negative log-likelihood of the actual next tokens).")
        else:
            st.metric("Sentence-embedding cosine", f"{q.cos_embedding:.4f}",
                      delta=f"{q.cos_embedding - 1:+.4f} vs full", help="Cosine of mean-pooled outputs.")
            st.metric("Per-token cosine", f"{q.cos_tokens:.4f}", delta=f"{q.cos_tokens - 1:+.4f} vs full")
        st.metric("Attention mass kept", pct(q.mass_kept),
                  help="Mean share of each row's full softmax held by the kept keys.")

    def compute_metrics(row, c) -> None:
        st.metric("Density", pct(row.density), delta=f"{100 * (row.density - 1):+.1f} pts",
                  delta_color="inverse", help="Kept query-key pairs / allowed pairs, all layers and heads.")
        st.metric("Attention FLOPs", si(c.attn_flops), delta=pct(c.attn_flops / c.attn_flops_full - 1),
                  delta_color="inverse", help="2·d·(scored + kept pairs). Oracle policies score every pair.")
        st.metric("Whole-model FLOPs", si(c.total_flops),
                  delta=pct(c.total_flops / c.total_flops_full - 1, 2), delta_color="inverse",
                  help="Attention plus 2 × linear parameters per token.")
        if c.kv_bytes is not None:
            kv_change = c.kv_bytes / c.kv_bytes_full - 1
            st.metric("KV cache at the end", si(c.kv_bytes, "B"), delta=pct(kv_change) if kv_change else None,
                      delta_color="inverse",
                      help="Only policies that never need a dropped key again (window, sink_window, h2o) save it.")
        else:
            st.metric("KV cache", "none", help="Encoders have no KV cache.")
        st.metric("Time (measured)", f"{c.seconds:.2f} s",
                  help="Wall time of this masked forward on the server. It varies with whatever else runs there "
                       "at the same moment (on one machine, your browser drawing this page). Masking simulates "
                       "sparsity: it saves no time.")

    def show_changed_predictions(row, ref) -> None:
        tok = ref.lm.tokenizer
        full_top, budget_top = ref.top1.tolist(), row.top1.tolist()
        changed = [a != b for a, b in zip(full_top, budget_top, strict=True)] + [None]  # the last: nothing follows
        full_lbl = token_labels(tok, full_top) + [None]
        budget_lbl = token_labels(tok, budget_top) + [None]
        st.markdown(f"##### Where the next-word prediction changed ({sum(map(bool, changed))} of "
                    f"{len(changed) - 1} positions)")
        st.html(changed_predictions_html(analysis.labels, changed, full_lbl, budget_lbl))

    def export(row) -> None:
        payload = {"model": controls.model, "weights": ref.lm.weights, "n_tokens": n, **row.to_json()}
        st.download_button("Download these numbers (JSON)", json.dumps(payload, indent=2),
                           file_name=f"attnviz-{row.budget.label.replace(' ', '_')}.json", mime="application/json")

    budget_view()
