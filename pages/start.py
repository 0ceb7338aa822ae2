"""Start page: attention in one minute, on the real model, before any click."""

import streamlit as st

from attnviz.budget import Budget
from attnviz.figures import attention_heatmap
from attnviz.inspection.focus import find_token, focus_of
from attnviz.inspection.tokens import token_labels
from attnviz.measure.scaling import topk_saving
from attnviz.policies import TopK
from ui.cached import SHARED_LAYER, get_model_config, get_row
from ui.show import attempt, flow_row, live_area, load_analysis, pct, si, token_legend
from ui.state import page_param, remember, shared_controls, sync_url

# Layer 14, head 9 (0-based 13, 8): on the default example the word "it" puts 55% of its attention on
# "trophy" (found by ranking every head on that pair; see the Explore page for all 270 heads).
LAYER, HEAD = SHARED_LAYER, 8
TEXT_PX = 380  # the text column: at 1400 px the heatmap beside it gets about 540 px
PICTURE_MIN_PX = 440  # the slider and heatmap column: narrower, it moves under the text
HEATMAP_PX = 560  # with the slider above it, fits a 768 px high window under Streamlit's header
KEY_TICKS = 20  # key labels, turned 60°, that fit under a 540 px heatmap without overlapping (more: every k-th)
METRIC_MIN_PX = 112  # a metric's least width: its widest value, "100.0%" (three fit the text column's 380 px)
METRICS_KEY = "start_metrics"
LONGER = (1024, 8192, 32768)  # text lengths (tokens) at which the whole-model saving is also counted

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
        # The slider sits right above the heatmap it changes: where the page is too narrow for the text and
        # the heatmap side by side (1024 px with the sidebar open), both move under the text together.
        row_of_two = flow_row()
        left = row_of_two.container(width=TEXT_PX)
        # A stretchy container would be squeezed rather than wrap: a minimum width makes it move down instead.
        st.html(f"<style>[data-testid=stLayoutWrapper]:has(> .st-key-start_picture) "
                f"{{min-width: min({PICTURE_MIN_PX}px, 100%);}}</style>")
        right = row_of_two.container(width="stretch", key="start_picture")
        with left:
            st.markdown(INTRO)
        with right:
            st.slider("Links each word may keep (K)", 1, max(n, 2), key="start_k", on_change=remember,
                      args=("start_k",), help="Each word keeps its K highest-scoring earlier words (top-k attention).")
        k = int(st.session_state["start_k"])
        sync_url(start_k=k)
        row = attempt(lambda: get_row(controls.model, controls.text, controls.max_tokens,
                                      Budget(TopK(), keys=min(k, n)), layer=layer), "Running the budget")
        if row is None:
            return
        with left:
            show_numbers(row, k)
        weights = row.weights[layer][head].float().numpy()
        with right:
            st.plotly_chart(
                attention_heatmap(weights, analysis.labels, analysis.labels, height=HEATMAP_PX,
                                  max_x_ticks=KEY_TICKS,
                                  title=f"Layer {layer + 1}, head {head + 1}: each word keeps {k} "
                                        f"link{'s' if k != 1 else ''}"),
                width="stretch",
            )
            token_legend()
            if controls.example == "trophy" and (layer, head) == (LAYER, HEAD):
                it_caption(row, k)

    def show_numbers(row, k: int) -> None:
        q, c = row.quality, row.compute
        saved = 1 - c.attn_flops / c.attn_flops_full
        whole = 1 - c.total_flops / c.total_flops_full
        # One row of three in the text column (1400 and 1024 px): labels wrap onto two lines instead of being cut,
        # values line up at the bottom; narrower than three values (a phone), the row wraps.
        st.html(f"<style>.st-key-{METRICS_KEY} [data-testid=stMetricLabel] * "
                "{white-space: normal !important; text-overflow: clip !important;}</style>")
        with flow_row("small", align="bottom", min_px=METRIC_MIN_PX, key=METRICS_KEY):
            st.metric("Quality kept", pct(q.top1), width="stretch", help="Measured: share of positions "
                      "where the budgeted model predicts the same next word as the full model.")
            st.metric("Attention compute saved", pct(saved), width="stretch", help="Counted from formulas: "
                      "attention FLOPs skipped. Top-k still scores every pair before choosing, so at most half "
                      "can be saved.")
            st.metric("Whole-model compute saved", pct(whole, 2), width="stretch", help="Counted from formulas: "
                      "FLOPs of the whole forward pass skipped (attention plus every linear layer).")
        share = c.attn_flops_full / c.total_flops_full
        config = get_model_config(controls.model)
        later = [(length, topk_saving(config, length, k)[1]) for length in LONGER if length > n]
        longer = "; ".join(f"{pct(s, 0 if s >= 0.1 else 1)} at {length:,} tokens" for length, s in later)
        st.markdown(
            f"**For the whole model:** on these {n} tokens attention is only {pct(share)} of the model's work "
            f"(the rest is the layers each word goes through on its own), so saving {pct(saved)} of attention saves "
            f"**{pct(whole, 2)}** of everything. Attention's share grows with the length of the text"
            + (f": the same K = {k} would save {longer} of the whole model." if longer else ".")
        )
        if saved > 0:
            st.markdown(
                f"**Why {pct(row.density)} of links kept but only {pct(saved)} saved?** Top-k must first score "
                f"every link to find the strongest; only mixing in the {pct(1 - row.density)} it drops is skipped, "
                "and mixing is half of attention's work."
            )
        st.caption(
            f"**Measured**: {pct(q.top1)} of next-word predictions unchanged; KL divergence {q.kl:.3f} nats; "
            f"perplexity {q.ppl:.2f} (full: {q.ppl_full:.2f}). **Counted**: each word keeps {pct(row.density)} of "
            f"its links; the full model does {si(c.total_flops_full, 'FLOPs')} on these {n} tokens; longer texts "
            "from this model's shape (see *Quality vs compute* and *Methods*)."
        )

    def it_caption(row, k: int) -> None:
        """What the word "it" looks at in the picture shown, and whether the prediction after it changed."""
        query = find_token(analysis.labels, "it")
        if query is None:
            return
        f = focus_of(row.weights[layer][head].float().numpy(), ref.weights[layer][head].float().numpy(), query,
                     row.top1, ref.top1)
        word = analysis.labels[f.key].lstrip("␣")
        full_word = analysis.labels[f.full_key].lstrip("␣")
        if f.moved:
            text = (f"With K = {k}, the word *it* now looks mostly at *{word}* ({pct(f.weight, 0)} of its "
                    f"attention), no longer at *{full_word}* as with full attention: the earlier layers, on the same "
                    "budget, passed on something different.")
        else:
            text = (f"In this head the word *it* looks mostly at *{word}* ({pct(f.weight, 0)} of its attention): "
                    "the model working out what *it* means.")
        if f.prediction_changed is not None:
            predicted = token_labels(ref.lm.tokenizer, [int(row.top1[query])])[0].lstrip("␣")
            if f.prediction_changed:
                was = token_labels(ref.lm.tokenizer, [int(ref.top1[query])])[0].lstrip("␣")
                text += f" The word predicted after *it* changed: *{predicted}* instead of *{was}*."
            else:
                text += f" The word predicted after *it* is unchanged: *{predicted}*."
        st.caption(text + " Hover a square to read its value.")

    budget_view()
    st.info("Next: **Explore attention** shows every layer and head; **Spend a budget** compares policies "
            "side by side; **Quality vs compute** maps the whole trade-off; **Spend one budget** spends one total "
            "unevenly, where attention is worth most; **Compress the cache** presses a prompt's KV cache as kvpress "
            "does.", icon="➡️")
    # Short labels: a page link is one line, cut with an ellipsis on a phone (the box above says what each does).
    st.page_link("pages/spend.py", label="Spend one budget", icon="⚖️")
    st.page_link("pages/compress.py", label="Compress the cache", icon="🗜️")
