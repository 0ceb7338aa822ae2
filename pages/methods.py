"""Methods: every policy, metric and formula in plain words, with the papers they come from."""

import streamlit as st

from attnviz.allocators import ALLOCATORS
from attnviz.policies import POLICIES
from attnviz.presses import PRESSES
from ui.state import shared_controls

shared_controls()
st.title("Methods and formulas")
st.markdown(
    """
Everything attnviz shows is either **measured** on the real model (quality numbers, wall-clock time) or
**counted** from the formulas below (pairs, FLOPs, memory). Pages label each number as one or the other.

### Attention, in one line
For each token (the *query*) and each token it may look at (a *key*): score = query · key / √d, where d is the
size of one head (64 in SmolLM2). A softmax turns a query's scores into weights that sum to 1, and the head's
output is the weighted sum of the keys' *values* ([Vaswani et al., 2017](https://arxiv.org/abs/1706.03762)).
A causal language model lets token *i* see tokens 0…*i*; an encoder such as MiniLM lets every token see every token.

### A budget
A budget keeps only some keys per query, in every layer and head. Dropped keys get a score of −∞ before the
softmax, so the kept keys' weights are renormalised to sum to 1. Its size is either a **key count K** (a query
keeps min(K, |Aᵢ|) keys, where Aᵢ are the keys it may see) or a **ratio R** (it keeps max(1, ⌈R·|Aᵢ|⌉) keys).
"""
)

st.markdown("### Policies")
for name, policy in POLICIES.items():
    tags = []
    tags.append("needs every score (oracle)" if policy.scores_all_pairs else "scores only what it keeps")
    tags.append("shrinks the KV cache" if policy.evicts else "keeps the whole KV cache")
    if policy.causal_only:
        tags.append("causal models only")
    params = ", ".join(f"`{p.name}` = {p.default}" for p in policy.parameters())
    params = f" Parameters: {params}." if params else ""
    st.markdown(f"**`{name}`**: {policy.summary} *({'; '.join(tags)})*{params}  \n{policy.methods}")

st.markdown(
    """
### Allocators: spending one total
A policy decides *which* keys a query keeps; an **allocator** decides *how many*, per layer, head and query, out
of one total. The total is stated as a uniform budget's size: "K = 8" means as many kept pairs in all as uniform
K = 8 would keep on this text (a causal text of n tokens: L·H·Σᵢ min(8, i+1) pairs). The density actually spent
is always reported, since an allocator that decides from attention (`heads`, `price`) can only aim at the total.
Allocators that read attention probabilities (`heads`, `price`) must **score every pair** first, so their
counted attention FLOPs charge every score, whatever the policy. `price`, `marginal` and `duo` need a causal
model; `duo` needs `sink_window` (it sets each head's own rule), and no allocator but `uniform` takes `topp`
(a mass, not a count) or `h2o` (one cache of its own size).
"""
)
for name, allocator in ALLOCATORS.items():
    params = ", ".join(f"`{p.name}` = {p.default}" for p in allocator.parameters())
    params = f" Parameters: {params}." if params else ""
    tag = " *(reads every probability: scores every pair)*" if allocator.reads_probabilities else ""
    st.markdown(f"**`{name}`**: {allocator.summary}{tag}{params}  \n{allocator.methods}")

st.markdown(
    """
### Presses: compressing a context's KV cache
A press (as in NVIDIA's [kvpress](https://github.com/NVIDIA/kvpress)) reads a context of C tokens with full
attention, then keeps max(1, int(C·(1 − r))) of its positions per layer and KV head, where r, kvpress's
*compression ratio*, is the share **removed**. The rest of the text is read from the compressed cache in one
teacher-forced pass; its quality (KL, top-1, perplexity) counts the predictions at positions C−1 … n−2.
Each press below reproduces the kvpress class named with it.
"""
)
for name, press in PRESSES.items():
    params = ", ".join(f"`{p.name}` = {p.default}" for p in press.parameters())
    params = f" Parameters: {params}." if params else ""
    st.markdown(f"**`{name}`** (kvpress `{press.kvpress_class}`): {press.summary}{params}  \n{press.methods}")

st.markdown(
    r"""
### Quality (measured)
Causal language models predict each next token; position t = 0…n−2 predicts token t+1.
* **KL divergence** (nats): the mean over positions of KL(p_full ‖ p_budget) between the full and the budgeted
  next-token distributions. 0 means identical. Computed without a second pass over the vocabulary: with logits
  z = W·h, KL = (logsumexp z_budget − logsumexp z_full) − (Σ p_full·W)·(h_budget − h_full), the textbook sum rewritten.
* **Top-1 agreement**: the share of positions where the most likely next token is the same.
* **Perplexity**: exp(mean negative log-likelihood of the actual next tokens), for the budget and for full attention.
* **Attention mass kept**: for each layer, head and query, the share of the row's own full softmax (computed in the
  budgeted run, before dropping keys) held by the kept keys; averaged.

Encoders (MiniLM) have no next token: **embedding cosine** is the cosine similarity of the mean-pooled outputs
(the sentence embedding), and **per-token cosine** the mean cosine of each token's output, budget vs full.

### Compute and memory (counted)
For a model with L layers, H query heads, H_kv key/value heads and head size d:
* a **pair** is one query–key combination in one layer and head. **Density** = kept pairs / allowed pairs: it
  counts kept links, not work saved (an oracle scores every pair and keeps the whole cache whatever its density).
* **Attention FLOPs** = 2·d·(scored pairs) + 2·d·(kept pairs): a score q·k costs 2d, and so does adding one
  weighted value. Oracle policies (top-k, top-p), and allocators that read probabilities (`heads`, `price`),
  score every allowed pair; the others only what they keep. So an
  oracle never goes below half of full attention's FLOPs. This is the *Quality vs compute* page's default
  compute axis.
* **Whole-model FLOPs** = attention FLOPs + 2 × (parameters of every projection, MLP and output layer) per token
  ([Kaplan et al., 2020](https://arxiv.org/abs/2001.08361)); the output layer counts even when tied to the embedding.
* **KV cache** at the end of the text = cached keys × 2 (keys and values) × d × bytes per number (4 in float32),
  over layers and KV heads. Only policies that never need a dropped key again (window, sink_window, h2o) shrink it;
  top-k, top-p and random keep every key, since a later query may pick any of them.
* **Efficient** (*Quality vs compute*): a point no other point beats, being at least as good for at most the same
  cost on the chosen compute axis (attention FLOPs, KV cache bytes or density).
* **Time** is measured wall-clock time of the budgeted forward pass, shared evenly by the budgets that ran in
  one pass (a frontier sweep of a short text runs two passes at a time, one core each; the Generate page makes
  its two continuations side by side the same way). attnviz *simulates*
  sparse attention by masking, which gives its quality exactly but saves no time: FLOP savings are never
  presented as measured speed.

At short lengths attention is a small share of a model's work (SmolLM2: about 1.6% at 128 tokens, 6% at 512,
12% at 1,024), so a budget saves little compute there; it matters for long texts and for KV-cache memory.

### Views
* **Attention rollout** ([Abnar & Zuidema, 2020](https://arxiv.org/abs/2005.00928)): each layer's head-averaged
  attention mixed with the identity (Â = ½A + ½I, for the residual connection), multiplied through the layers.
* **Head statistics**: entropy of each attention row (nats; low = focused), the share of attention on the first
  token (the "sink"), and the mass held by the top 3 keys, averaged over queries.
* Policy design follows NVIDIA's [kvpress](https://github.com/NVIDIA/kvpress): each policy is a small class that
  only decides which keys to keep; all measuring is shared.
"""
)
