"""Tests for attnviz's attention kernel (``attnviz.engine.kernel``) and its transformers adapter.

References are independent implementations: PyTorch's SDPA, transformers' eager
attention, a float64 ``repeat_interleave`` computation, and hand arithmetic.
No model is loaded.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from transformers.models.llama.modeling_llama import eager_attention_forward

from attnviz.engine.hf_attention import attnviz_attention
from attnviz.engine.kernel import attend, attention_steps, masked_softmax

TOL = 1e-5


# --------------------------------------------------------------------------- helpers


def _causal(lq: int, lk: int) -> torch.Tensor:
    """Causal mask with the queries aligned to the end of the keys (prefill / decoding)."""
    return torch.ones(lq, lk, dtype=torch.bool).tril(diagonal=lk - lq)


def _make_mask(kind: str, b: int, lq: int, lk: int, gen: torch.Generator) -> torch.Tensor | None:
    """A model-style bool mask ``(b, 1, lq, lk)`` (True = may attend)."""
    if kind == "none":
        return None
    if kind == "causal":
        return _causal(lq, lk).expand(b, 1, lq, lk).clone()
    if kind == "causal_left_pad":
        # Row r of the batch has r padding tokens on the left; padded query rows see nothing.
        m = _causal(lq, lk).expand(b, 1, lq, lk).clone()
        for r in range(b):
            m[r, :, :, :r + 1] = False
        return m
    if kind == "encoder_right_pad":
        m = torch.ones(b, 1, lq, lk, dtype=torch.bool)
        for r in range(b):
            m[r, :, :, lk - r:] = False
        return m
    if kind == "random":
        m = torch.rand(b, 1, lq, lk, generator=gen) < 0.5
        m[:, :, 0] = False  # one row with no allowed key at all
        return m
    raise AssertionError(kind)


def _reference(q, k, v, mask, scaling):
    """float64 attention via repeat_interleave (independent of the kernel's GQA view)."""
    g = q.shape[1] // k.shape[1]
    kr = k.double().repeat_interleave(g, dim=1)
    vr = v.double().repeat_interleave(g, dim=1)
    s = q.double() @ kr.transpose(-1, -2) * scaling
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    w = torch.softmax(s, dim=-1)
    w = torch.where(torch.isnan(w), torch.zeros_like(w), w)
    return w @ vr, w


CASES = [
    # (batch, q_heads, kv_heads, q_len, k_len, d, mask kind)
    (1, 2, 2, 5, 5, 8, "none"),
    (2, 4, 4, 6, 6, 16, "causal"),
    (2, 4, 2, 7, 7, 16, "causal"),  # GQA, group 2
    (3, 6, 2, 5, 5, 8, "causal_left_pad"),  # GQA, group 3, padded rows with no key
    (2, 8, 1, 4, 4, 8, "encoder_right_pad"),  # multi-query
    (2, 4, 2, 3, 7, 8, "causal"),  # decoding: fewer queries than keys
    (2, 4, 2, 6, 6, 8, "random"),
]


# --------------------------------------------------------------------------- attend vs SDPA / reference


@pytest.mark.parametrize("b,hq,hkv,lq,lk,d,kind", CASES)
def test_attend_matches_sdpa_and_reference(b, hq, hkv, lq, lk, d, kind):
    gen = torch.Generator().manual_seed(CASES.index((b, hq, hkv, lq, lk, d, kind)))
    q = torch.randn(b, hq, lq, d, generator=gen)
    k = torch.randn(b, hkv, lk, d, generator=gen)
    v = torch.randn(b, hkv, lk, d, generator=gen)
    mask = _make_mask(kind, b, lq, lk, gen)
    scaling = 1.0 / math.sqrt(d)

    out, weights = attend(q, k, v, mask, scaling)
    assert out.shape == (b, hq, lq, d)
    assert weights.shape == (b, hq, lq, lk)
    assert not torch.isnan(out).any() and not torch.isnan(weights).any()

    rows_ok = torch.ones(b, 1, lq, dtype=torch.bool) if mask is None else mask.any(-1)
    rows_ok = rows_ok.expand(b, hq, lq)

    sdpa = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scaling, enable_gqa=True)
    assert torch.allclose(out[rows_ok], sdpa[rows_ok], atol=TOL, rtol=0)

    ref_out, ref_w = _reference(q, k, v, mask, scaling)
    assert torch.allclose(out.double()[rows_ok], ref_out[rows_ok], atol=TOL, rtol=0)
    assert torch.allclose(weights.double(), ref_w, atol=TOL, rtol=0)

    # A row with no allowed key gives zeros (output and weights), never NaN.
    assert torch.equal(out[~rows_ok], torch.zeros_like(out[~rows_ok]))
    assert torch.equal(weights[~rows_ok], torch.zeros_like(weights[~rows_ok]))
    # Other rows are a distribution over allowed keys only.
    assert torch.allclose(weights.sum(-1)[rows_ok], torch.ones(int(rows_ok.sum())), atol=1e-6)
    if mask is not None:
        assert (weights.masked_select(~mask.expand(b, hq, lq, lk)) == 0).all()


def test_attend_default_scaling_is_inverse_sqrt_d():
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 2, 4, 9, generator=gen) for _ in range(3))
    out, _ = attend(q, k, v)
    ref, _ = _reference(q, k, v, None, 1.0 / 3.0)
    assert torch.allclose(out.double(), ref, atol=TOL)


def test_keep_mask_renormalises_over_kept_keys():
    """A keep mask combined with the model mask: SDPA with the combined mask is the reference."""
    gen = torch.Generator().manual_seed(7)
    b, hq, hkv, n, d = 2, 4, 2, 6, 8
    q = torch.randn(b, hq, n, d, generator=gen)
    k = torch.randn(b, hkv, n, d, generator=gen)
    v = torch.randn(b, hkv, n, d, generator=gen)
    keep = torch.rand(b, hq, n, n, generator=gen) < 0.6
    keep[..., torch.arange(n), torch.arange(n)] = True  # every query keeps itself
    mask = _causal(n, n) & keep
    out, w = attend(q, k, v, mask, 0.3)
    sdpa = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.3, enable_gqa=True)
    assert torch.allclose(out, sdpa, atol=TOL, rtol=0)
    assert torch.allclose(w.sum(-1), torch.ones(b, hq, n), atol=1e-6)


def test_masked_softmax_hand_case():
    # softmax over the kept keys [0, ln 3] only: weights 1/4 and 3/4; the masked key gets 0.
    scores = torch.tensor([[0.0, math.log(3.0), 5.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, False]])
    w = masked_softmax(scores, mask)
    assert torch.allclose(w, torch.tensor([[0.25, 0.75, 0.0]], dtype=torch.float64), atol=1e-12)
    # every key masked: zeros, not NaN
    w = masked_softmax(scores, torch.zeros(1, 3, dtype=torch.bool))
    assert torch.equal(w, torch.zeros(1, 3, dtype=torch.float64))


def test_gqa_head_mapping_matches_repeat_kv():
    """Query head h reads KV head h // group: heads 0,1 -> KV 0, heads 2,3 -> KV 1."""
    b, hq, hkv, n, d = 1, 4, 2, 3, 2
    q = torch.randn(b, hq, n, d)
    k = torch.randn(b, hkv, n, d)
    v = torch.stack([torch.zeros(n, d), torch.ones(n, d)]).unsqueeze(0)  # KV head 0 -> 0, KV head 1 -> 1
    out, _ = attend(q, k, v)
    assert torch.allclose(out[0, :2], torch.zeros(2, n, d), atol=1e-6)
    assert torch.allclose(out[0, 2:], torch.ones(2, n, d), atol=1e-6)


def test_attend_rejects_uneven_head_groups():
    with pytest.raises(ValueError, match="3 query heads cannot share 2"):
        attend(torch.randn(1, 3, 2, 4), torch.randn(1, 2, 2, 4), torch.randn(1, 2, 2, 4))


# --------------------------------------------------------------------------- transformers' eager attention


class _DummyAttention(torch.nn.Module):
    def __init__(self, groups: int, layer_idx: int = 0):
        super().__init__()
        self.num_key_value_groups = groups
        self.layer_idx = layer_idx
        self.training = False


@pytest.mark.parametrize("b,hq,hkv,lq,lk,d,kind", [c for c in CASES if c[-1] != "none"])
def test_matches_transformers_eager_attention(b, hq, hkv, lq, lk, d, kind):
    gen = torch.Generator().manual_seed(11)
    q = torch.randn(b, hq, lq, d, generator=gen)
    k = torch.randn(b, hkv, lk, d, generator=gen)
    v = torch.randn(b, hkv, lk, d, generator=gen)
    mask = _make_mask(kind, b, lq, lk, gen)
    additive = torch.zeros(b, 1, lq, lk).masked_fill(~mask, torch.finfo(torch.float32).min)
    module = _DummyAttention(hq // hkv).eval()
    scaling = d**-0.5

    eager_out, eager_w = eager_attention_forward(module, q, k, v, additive, scaling=scaling)
    assert eager_out.shape == (b, lq, hq, d)

    rows_ok = mask.any(-1).expand(b, hq, lq)  # (b, hq, lq)
    rows_ok_bqh = rows_ok.transpose(1, 2)  # (b, lq, hq), the output layout

    # The kernel itself, in (b, heads, q, d) layout.
    out, w = attend(q, k, v, mask, scaling)
    assert torch.allclose(out.transpose(1, 2)[rows_ok_bqh], eager_out[rows_ok_bqh], atol=TOL, rtol=0)
    assert torch.allclose(w[rows_ok], eager_w[rows_ok], atol=TOL, rtol=0)

    # The transformers adapter: same (b, q, heads, d) layout as eager, with a float or a bool mask.
    for m in (additive, mask):
        a_out, a_w = attnviz_attention(module, q, k, v, m, scaling=scaling)
        assert a_out.shape == eager_out.shape == (b, lq, hq, d)
        assert a_out.is_contiguous()
        assert torch.allclose(a_out[rows_ok_bqh], eager_out[rows_ok_bqh], atol=TOL, rtol=0)
        assert torch.allclose(a_w[rows_ok], eager_w[rows_ok], atol=TOL, rtol=0)
        assert torch.equal(a_out[~rows_ok_bqh], torch.zeros_like(a_out[~rows_ok_bqh]))


def test_adapter_without_mask_or_scaling_matches_eager():
    gen = torch.Generator().manual_seed(5)
    b, hq, hkv, n, d = 2, 4, 2, 5, 16
    q = torch.randn(b, hq, n, d, generator=gen)
    k = torch.randn(b, hkv, n, d, generator=gen)
    v = torch.randn(b, hkv, n, d, generator=gen)
    module = _DummyAttention(2).eval()
    eager_out, _ = eager_attention_forward(module, q, k, v, None, scaling=0.25)
    a_out, _ = attnviz_attention(module, q, k, v, None)  # default scaling = 16 ** -0.5 = 0.25
    assert a_out.shape == (b, n, hq, d)
    assert torch.allclose(a_out, eager_out, atol=TOL, rtol=0)


# --------------------------------------------------------------------------- attention_steps


def test_worked_example_single_key_gets_all_the_weight():
    x = [0.1, 0.2, 0.3, 0.4]
    v = [0.5, 0.6, 0.7, 0.8]
    st = attention_steps(x, x, v)
    # One key: q.k = 0.01 + 0.04 + 0.09 + 0.16 = 0.3, scale 1/sqrt(4) = 1/2, scaled 0.15.
    assert st.scores.shape == (1, 1)
    assert st.scores.item() == pytest.approx(0.3, abs=1e-12)
    assert st.scale == pytest.approx(0.5)
    assert st.scaled.item() == pytest.approx(0.15, abs=1e-12)
    # Softmax over a single key is exactly 1, so the output is V itself.
    assert st.weights.tolist() == [[1.0]]
    assert torch.allclose(st.output, torch.tensor([v], dtype=torch.float64), atol=1e-12)
    # The wrong claim from the source document (weight 0.5, output [0.125, 0.18, 0.245, 0.32]) is not produced.
    assert st.weights.item() != pytest.approx(0.5)
    assert not torch.allclose(st.output, torch.tensor([[0.125, 0.18, 0.245, 0.32]], dtype=torch.float64), atol=1e-3)


def test_steps_two_by_two_causal_hand_computed():
    q = [[1.0, 0.0], [0.0, 2.0]]
    k = [[1.0, 1.0], [0.0, 1.0]]
    v = [[1.0, 2.0], [3.0, 4.0]]
    st = attention_steps(q, k, v, causal=True)
    r = 1 / math.sqrt(2)
    # scores = Q K^T: row 0 = [1*1 + 0*1, 1*0 + 0*1] = [1, 0]; row 1 = [0*1 + 2*1, 0*0 + 2*1] = [2, 2]
    assert st.scores.tolist() == [[1.0, 0.0], [2.0, 2.0]]
    assert st.scale == pytest.approx(r, abs=1e-15)
    assert torch.allclose(st.scaled, torch.tensor([[r, 0.0], [2 * r, 2 * r]], dtype=torch.float64), atol=1e-12)
    assert st.mask.tolist() == [[True, False], [True, True]]
    assert st.masked[0, 1].item() == float("-inf")
    assert torch.allclose(st.masked[0, 0], torch.tensor(r, dtype=torch.float64))
    assert torch.allclose(st.masked[1], torch.tensor([2 * r, 2 * r], dtype=torch.float64))
    # row 0 sees only key 0 -> [1, 0]; row 1 has two equal scores -> [1/2, 1/2]
    assert torch.allclose(st.weights, torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=torch.float64), atol=1e-12)
    # output row 0 = v0 = [1, 2]; row 1 = (v0 + v1) / 2 = [2, 3]
    assert torch.allclose(st.output, torch.tensor([[1.0, 2.0], [2.0, 3.0]], dtype=torch.float64), atol=1e-12)


def test_steps_two_by_two_without_mask_and_with_keep():
    q = [[1.0, 0.0], [0.0, 2.0]]
    k = [[1.0, 1.0], [0.0, 1.0]]
    v = [[1.0, 2.0], [3.0, 4.0]]
    a = 1 / math.sqrt(2)
    st = attention_steps(q, k, v, causal=False)
    assert st.mask.tolist() == [[True, True], [True, True]]
    w0 = [math.exp(a) / (math.exp(a) + 1), 1 / (math.exp(a) + 1)]  # softmax([1/sqrt2, 0])
    expected_w = torch.tensor([w0, [0.5, 0.5]], dtype=torch.float64)
    assert torch.allclose(st.weights, expected_w, atol=1e-12)
    out0 = [w0[0] * 1 + w0[1] * 3, w0[0] * 2 + w0[1] * 4]
    assert torch.allclose(st.output, torch.tensor([out0, [2.0, 3.0]], dtype=torch.float64), atol=1e-12)

    # A keep mask dropping key 0 for query 1, on top of causality: query 1 now reads only v1.
    st = attention_steps(q, k, v, causal=True, keep=[[True, True], [False, True]])
    assert st.mask.tolist() == [[True, False], [False, True]]
    assert torch.allclose(st.weights, torch.eye(2, dtype=torch.float64))
    assert torch.allclose(st.output, torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64))


def test_steps_causal_aligns_queries_to_the_last_keys():
    # One query (the newest token) over three keys: it sees all of them.
    st = attention_steps([1.0, 0.0], [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [[1.0], [2.0], [3.0]], causal=True)
    assert st.mask.tolist() == [[True, True, True]]
    # Two queries over three keys: the first sees keys 0..1, the second 0..2.
    st = attention_steps([[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [[1.0], [2.0], [3.0]],
                         causal=True)
    assert st.mask.tolist() == [[True, True, False], [True, True, True]]


def test_steps_output_is_the_kernel_output():
    gen = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(4, 3, generator=gen, dtype=torch.float64) for _ in range(3))
    st = attention_steps(q, k, v, causal=True)
    ref_out, ref_w = _reference(q[None, None], k[None, None], v[None, None], _causal(4, 4), 1 / math.sqrt(3))
    assert torch.allclose(st.output, ref_out[0, 0], atol=1e-12)
    assert torch.allclose(st.weights, ref_w[0, 0], atol=1e-12)


@pytest.mark.parametrize(
    "q,k,v,kwargs,pattern",
    [
        ([[1.0, 2.0]], [[1.0, 2.0, 3.0]], [[1.0, 2.0]], {}, "dimensions"),  # d_q != d_k
        ([[1.0, 2.0]], [[1.0, 2.0]], [[1.0, 2.0], [3.0, 4.0]], {}, "values"),  # n_k != n_v
    ],
)
def test_steps_bad_shapes_raise_clear_value_error(q, k, v, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        attention_steps(q, k, v, **kwargs)


@pytest.mark.parametrize(
    "q,k,v,kwargs",
    [
        # 3-D input (the step page takes vectors or matrices only)
        (torch.ones(2, 2, 2), torch.ones(2, 2), torch.ones(2, 2), {}),
        # values with 3 dimensions
        (torch.ones(2, 2), torch.ones(2, 2), torch.ones(2, 2, 2), {}),
        # keep mask of the wrong shape (3x3 for a 2x2 attention)
        (torch.ones(2, 2), torch.ones(2, 2), torch.ones(2, 2), {"keep": torch.ones(3, 3, dtype=torch.bool)}),
    ],
    ids=["3d-query", "3d-values", "keep-shape"],
)
def test_steps_other_bad_shapes_raise_value_error(q, k, v, kwargs):
    """Spec: bad shapes raise ValueError with a clear message (naming the shapes/dimensions)."""
    with pytest.raises(ValueError, match=r"(?i)shape|dimension|matri|vector|keep"):
        attention_steps(q, k, v, **kwargs)
