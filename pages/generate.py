"""Generate: the same prompt continued with full and with budgeted attention, side by side."""


import pandas as pd
import streamlit as st

from attnviz import hosting
from attnviz.budget import Budget
from attnviz.figures import continuation_html
from attnviz.generate import first_divergence
from attnviz.inspection.tokens import describe_tokens
from attnviz.policies import POLICIES
from ui.cached import get_continuations, get_model
from ui.params import drop_other_params, policy_controls
from ui.show import attempt, load_model_shown, si, token_legend
from ui.state import link_param, remember, shared_controls, sync_url

controls = shared_controls(causal_only=True)
st.title("Generate text under a budget")
st.markdown(
    "The model continues your text one token at a time (always picking its most likely next token), once with "
    "full attention and once with a budget. **Evicting policies** (`window`, `sink_window`, `h2o`) really drop "
    "entries from the KV cache, so their memory stays fixed while the text grows; the other policies keep the "
    "whole cache and only ignore part of it. The first token where the two continuations differ is marked."
)

POLICY_NAMES = [name for name, cls in POLICIES.items() if not cls.reference]


K_RANGE, NEW_RANGE, P_RANGE = (2, 256), (1, 120), (0.05, 1.0)
# A public server continues at most HOSTED_NEW_TOKENS tokens: the slider stops there and a link beyond it is refused.
new_max, new_cut = hosting.cap(NEW_RANGE[1], hosting.HOSTED_NEW_TOKENS, "new tokens")
NEW_RANGE = (NEW_RANGE[0], new_max)
link_param("gen_policy", "sink_window", str, POLICY_NAMES.__contains__, "one of " + ", ".join(POLICY_NAMES))
link_param("gen_k", 32, int, lambda k: K_RANGE[0] <= k <= K_RANGE[1], "{}–{}".format(*K_RANGE))
link_param("gen_new", min(40, NEW_RANGE[1]), int, lambda k: NEW_RANGE[0] <= k <= NEW_RANGE[1],
           "{}–{}".format(*NEW_RANGE))

a, b, c, d = st.columns(4)
a.selectbox("Policy", POLICY_NAMES, key="gen_policy", on_change=remember, args=("gen_policy",))
policy = st.session_state["gen_policy"]
pol_cls = POLICIES[policy]
if pol_cls.ratio_only:
    # Seeded once per session, at the first ratio-only policy's own default.
    link_param("gen_p", pol_cls.default_ratio, float, lambda p: P_RANGE[0] <= p <= P_RANGE[1], "{}–{}".format(*P_RANGE))
    b.slider(f"Attention mass {pol_cls.ratio_symbol}", *P_RANGE, step=0.05, key="gen_p", on_change=remember,
             args=("gen_p",))
    size = {"ratio": round(float(st.session_state["gen_p"]), 4)}  # the slider's float steps: 0.5, not 0.5000000001
else:
    b.slider("Keys kept (cache size for evicting policies)", *K_RANGE, key="gen_k", on_change=remember,
             args=("gen_k",))
    size = {"keys": int(st.session_state["gen_k"])}
c.slider("New tokens", *NEW_RANGE, key="gen_new", on_change=remember, args=("gen_new",),
         help=f"This public server continues at most {new_max} tokens." if new_cut else None)
# Links made before parameters had keys of their own said gen_sinks=.
drop_other_params("gen_", [pol_cls])
pol = policy_controls(pol_cls, prefix="gen_", columns=[d], legacy={"sinks": "gen_sinks"})
sync_url(gen_policy=policy, gen_k=size.get("keys"), gen_p=size.get("ratio"), gen_new=st.session_state["gen_new"],
         gen_sinks=None)


budget = Budget(pol, keys=size.get("keys"), ratio=size.get("ratio"))
if load_model_shown(controls.model) is None:  # a failed load: its message and a Try again button
    st.stop()
with st.spinner("Generating with full attention and with the budget, side by side…"):
    pair = attempt(lambda: get_continuations(controls.model, controls.text, budget, int(st.session_state["gen_new"]),
                                          controls.max_tokens), "Generating")
full, budgeted = pair if pair else (None, None)

if full and budgeted:
    lm = get_model(controls.model)
    tok = lm.tokenizer
    diverge = first_divergence(full.new_ids, budgeted.new_ids)
    # Caches are compared at equal length: a continuation that stopped sooner holds fewer keys, and that is no saving.
    m = min(len(full.new_ids), len(budgeted.new_ids))
    if full.truncated_from:
        st.caption(f"The prompt was truncated from {full.truncated_from} tokens to fit the cap.")
    st.caption(f"**Model:** {lm.weights} · prompt: {len(full.prompt_ids)} tokens")
    left, right = st.columns(2)
    for col, gen, title in ((left, full, "Full attention"), (right, budgeted, budgeted.budget.label)):
        col.markdown(f"##### {title}")
        pieces = [info.text for info in describe_tokens(tok, gen.new_ids)]  # real text, so it wraps
        col.html(continuation_html(pieces, diverge))
        if gen.ended:
            col.markdown(f"**⏹ stopped after {len(gen.new_ids)} tokens: the model ended the text** "
                         "(it chose its end-of-text token).")
        change = gen.kv_bytes[m - 1] / full.kv_bytes[m - 1] - 1 if gen is not full and full.kv_bytes[m - 1] else None
        col.metric(f"KV cache at new token {m} (counted)", si(gen.kv_bytes[m - 1], "B"),
                   delta=None if change is None else "same as full" if change == 0 else f"{change:+.0%} vs full",
                   delta_color="off" if change == 0 else "inverse",
                   help=f"Counted when new token {m} was predicted, both continuations at the same length (where "
                        "the shorter one ends): cached keys × 2 (keys and values) × head size × 4 bytes, over layers "
                        "and KV heads.")
        kept = (f" · {gen.reused} of its tokens were kept from an earlier request (greedy decoding repeats itself "
                f"exactly), {len(gen.new_ids) - gen.reused} decoded now" if gen.reused else "")
        col.caption(f"Largest KV cache over its {len(gen.new_ids)} tokens: {si(max(gen.kv_bytes), 'B')} · measured "
                    f"time {gen.seconds:.2f} s for them (a simulation on CPU, the two continuations side by side; "
                    f"evicting policies save memory, not time, here){kept}")
    token_legend()
    if len(full.new_ids) != len(budgeted.new_ids):
        st.caption(f"Both KV caches are compared at new token {m}, where the shorter continuation stops: a "
                   "continuation that ends sooner holds fewer keys, which is not a saving.")
    if diverge is None:
        st.success("The two continuations agree token for token.")
    else:
        st.warning(f"The continuations first differ at new token {diverge + 1} (outlined in red).")
    steps = max(len(full.kv_bytes), len(budgeted.kv_bytes))
    new_token = pd.RangeIndex(1, steps + 1, name="new token")
    chart = pd.DataFrame({name: pd.Series(g.kv_bytes, index=new_token[:len(g.kv_bytes)], dtype=float) / 1e6
                          for name, g in (("full attention", full), (budgeted.budget.label, budgeted))},
                         index=new_token)  # MB, as in the metrics above; a line that ends: that text ended
    st.line_chart(chart, x_label="new token (the KV cache when it was predicted)", y_label="KV cache, MB (counted)")
