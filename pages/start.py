"""Start page: attention in one minute, on the real model, before any click."""

import streamlit as st

from attnviz.budget import Budget
from attnviz.figures import attention_heatmap
from attnviz.policies import TopK
from ui.cached import SHARED_LAYER, get_row
from ui.show import attempt, flow_row, live_area, load_analysis, pct, si
from ui.state import page_param, remember, shared_controls, sync_url

# Layer 14, head 9 (0-based 13, 8): on the default example the word "it" puts 55% of its attention on
# "trophy" (found by ranking every head on that pair; see the Explore page for all 270 heads).
LAYER, HEAD = SHARED_LAYER, 8
TEXT_PX = 380  # the text column: at 1400 px the heatmap beside it gets about 540 px

controls = shared_controls(causal_only=True)
st.title("Attention in one minute")
INTRO = """
When a language model reads, every word **looks back at earlier words** to decide what comes next. How
strongly it looks at each is its **attention**. In the grid, each **row** is a word doing the looking, each
**column** a word it looks at; **darker = more attention** (one of the model's 270 attention "heads").

Attention is not free: every word scores every earlier word, so the work grows with the *square* of the
text's length, and every earlier word must stay in memory. Treat it as a **budget**: let each word keep only
its strongest links. **Move the slider** and watch what survives and what is saved.
"""

analysis = load_analysis(controls, layer=LAYER)
if analysis is None:
    st.markdown(INTRO)
else:
    ref = analysis.ref
    n = ref.n_tokens
    layer = min(LAYER, ref.shape.layers - 1)
    head = min(HEAD, ref.shape.q_heads - 1)
    default_k = max(1, min(n, 8))
    k = page_param("start_k", default_k, int)
    if not 1 <= k <= n:
        st.session_state["start_k"] = default_k

    @st.fragment
    def budget_view() -> None:
        with live_area():
            text_and_heatmap()

    def text_and_heatmap() -> None:
        # The heatmap goes straight into the row (a container around it would be squeezed instead of moving
        # under the text where the page is too narrow for both: 1024 px with the sidebar open).
        row_of_two = flow_row()
        left = row_of_two.container(width=TEXT_PX)
        with left:
            st.markdown(INTRO)
            st.slider("Links each word may keep (K)", 1, max(n, 2), key="start_k", on_change=remember,
                      args=("start_k",), help="Each word keeps its K highest-scoring earlier words (top-k attention).")
        k = int(st.session_state["start_k"])
        sync_url(start_k=k)
        row = attempt(lambda: get_row(controls.model, controls.text, controls.max_tokens,
                                      Budget(TopK(), keys=min(k, n)), layer=layer), "Running the budget")
        if row is None:
            return
        q, c = row.quality, row.compute
        saved = 1 - c.attn_flops / c.attn_flops_full
        with left:
            with flow_row("large"):  # as wide as their text: a label or value is never cut, the pair wraps instead
                st.metric("Quality kept", pct(q.top1), width="content", help="Measured: share of positions "
                          "where the budgeted model predicts the same next word as the full model.")
                st.metric("Attention compute saved", pct(saved), width="content", help="Counted from formulas: "
                          "attention FLOPs skipped. Top-k still scores every pair before choosing, so at most half "
                          "can be saved.")
            share = c.attn_flops_full / c.total_flops_full
            st.caption(
                f"Each word keeps {pct(row.density)} of its links. **Measured**: {pct(q.top1)} of next-word "
                f"predictions unchanged; KL divergence {q.kl:.3f} nats; perplexity {q.ppl:.2f} "
                f"(full: {q.ppl_full:.2f}). **Counted**: attention is {pct(share)} of the model's "
                f"{si(c.total_flops_full, 'FLOPs')} on these {n} tokens; its share grows with length "
                "(see *Quality vs compute*)."
            )
        weights = row.weights[layer][head].float().numpy()
        row_of_two.plotly_chart(
            attention_heatmap(weights, analysis.labels, analysis.labels, height=600,
                              title=f"Layer {layer + 1}, head {head + 1}: each word keeps {k} "
                                    f"link{'s' if k != 1 else ''}"),
            width="stretch",
        )
        if controls.example == "trophy" and (layer, head) == (LAYER, HEAD):
            st.caption("In this head the word *it* looks mostly at *trophy*: the model working out what "
                       "*it* means. Hover a square to read its value.")

    budget_view()
    st.info("Next: **Explore attention** shows every layer and head; **Spend a budget** compares policies "
            "side by side; **Quality vs compute** maps the whole trade-off.", icon="➡️")
