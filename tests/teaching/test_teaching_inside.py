"""Tests for ``attnviz.teaching.inside``: the source article's worked example and module, corrected; page helpers.

References are independent: hand arithmetic, PyTorch's SDPA, and a plain softmax. No model is loaded.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attnviz.teaching.inside import (
    DOCUMENT_CLAIMS,
    WORKED_V,
    DocumentAttentionModel,
    SeedAttention,
    default_inputs,
    document_arithmetic,
    document_module_error,
    head_steps,
    matrix_to_text,
    resize,
    run_seed_module,
    seed_inputs,
    seed_module_code,
    text_to_matrix,
    worked_example,
)

# --------------------------------------------------------------------------- the worked example


def test_worked_example_single_key_weight_is_exactly_one_and_output_is_v():
    ex = worked_example()
    assert ex.weights.shape == (1, 1)
    assert ex.weights.item() == 1.0  # exactly, not approximately
    assert torch.equal(ex.output, torch.tensor([WORKED_V], dtype=torch.float64))
    # The score is 0.01 + 0.04 + 0.09 + 0.16 = 0.3, scaled by 1/√4 to 0.15: irrelevant to the weight.
    assert ex.scores.item() == pytest.approx(0.3, abs=1e-12)
    assert ex.scale == 0.5
    assert ex.scaled.item() == pytest.approx(0.15, abs=1e-12)


def test_worked_example_does_not_produce_the_documents_numbers():
    ex = worked_example()
    weights = ex.weights.flatten().numpy()
    output = ex.output.flatten().numpy()
    assert weights.shape != np.shape(DOCUMENT_CLAIMS.weights)  # one key has one weight, not four
    assert not np.allclose(output, DOCUMENT_CLAIMS.output, atol=1e-3)
    assert not np.allclose(output, DOCUMENT_CLAIMS.intermediate, atol=1e-3)
    assert not np.isclose(weights, 0.5).any()


def test_document_arithmetic_explains_the_documents_numbers():
    """The article's numbers are 0.5 · V, then · V again (element-wise): the page's explanation holds."""
    arith = document_arithmetic()
    np.testing.assert_allclose(arith["intermediate"], DOCUMENT_CLAIMS.intermediate, atol=1e-12)
    np.testing.assert_allclose(arith["output"], DOCUMENT_CLAIMS.output, atol=1e-12)


# --------------------------------------------------------------------------- the seed module


@pytest.fixture(scope="module")
def seed_run():
    return run_seed_module(seed=0)


def test_seed_module_output_is_5x3_and_weights_5x5(seed_run):
    assert tuple(seed_run.output.shape) == (5, 3)
    assert tuple(seed_run.weights.shape) == (5, 5)
    assert tuple(seed_run.output.shape) != DOCUMENT_CLAIMS.module_output_shape  # the article printed 5×1


def test_seed_module_weight_rows_sum_to_one(seed_run):
    torch.testing.assert_close(seed_run.weights.sum(-1), torch.ones(5), atol=1e-6, rtol=0)
    assert (seed_run.weights >= 0).all()
    torch.testing.assert_close(seed_run.steps.weights.sum(-1), torch.ones(5, dtype=torch.float64), atol=1e-12, rtol=0)


def test_seed_module_scales_by_sqrt_3_not_sqrt_5(seed_run):
    steps = seed_run.steps
    assert steps.scale == pytest.approx(1 / math.sqrt(3))
    torch.testing.assert_close(steps.scaled, steps.scores / math.sqrt(3), atol=1e-12, rtol=0)
    q, k = seed_run.q.double(), seed_run.k.double()
    scores = q @ k.T
    right = torch.softmax(scores / math.sqrt(3), dim=-1)
    wrong = torch.softmax(scores / math.sqrt(5), dim=-1)
    torch.testing.assert_close(seed_run.weights.double(), right, atol=1e-6, rtol=0)
    assert (seed_run.weights.double() - wrong).abs().max() > 1e-4  # the √5 version is measurably different


def test_seed_module_equals_sdpa_and_our_kernel(seed_run):
    sdpa = F.scaled_dot_product_attention(seed_run.q[None], seed_run.k[None], seed_run.v[None])[0]
    assert (seed_run.output - sdpa).abs().max() <= 1e-6
    assert seed_run.max_diff_sdpa <= 1e-6
    assert seed_run.max_diff_kernel <= 1e-6
    torch.testing.assert_close(seed_run.weights.double(), seed_run.steps.weights, atol=1e-6, rtol=0)


def test_seed_module_is_reproducible_and_seeded():
    a, b, c = run_seed_module(0), run_seed_module(0), run_seed_module(1)
    assert torch.equal(a.output, b.output)
    assert not torch.equal(a.output, c.output)


def test_seed_module_converts_integer_input():
    torch.manual_seed(0)
    model = SeedAttention(5, 3)
    ints = seed_inputs()
    assert ints.dtype == torch.int64
    out_int, w_int = model(ints)
    out_float, w_float = model(ints.float())
    assert out_int.dtype == torch.float32
    assert torch.equal(out_int, out_float) and torch.equal(w_int, w_float)
    # batched input works too (softmax over the last axis)
    out_batch, _ = model(ints.float()[None].expand(2, 5, 5))
    assert out_batch.shape == (2, 5, 3)
    torch.testing.assert_close(out_batch[1], out_float)


def test_the_documents_module_fails_on_its_own_input_and_is_5x3_with_floats():
    message = document_module_error()
    assert message.startswith("RuntimeError") and "dtype" in message
    torch.manual_seed(0)
    out = DocumentAttentionModel(5, 3)(seed_inputs().float())
    assert out.shape == (5, 3)  # never the printed 5×1


def test_the_shown_code_is_the_code_that_runs(seed_run):
    namespace: dict = {}
    exec(compile(seed_module_code(0), "<shown code>", "exec"), namespace)  # our own source, shown on the page
    assert torch.equal(namespace["output"].detach(), seed_run.output)
    assert torch.equal(namespace["weights"].detach(), seed_run.weights)
    assert max(len(line) for line in seed_module_code(0).splitlines()) <= 72  # readable in a narrow column


# --------------------------------------------------------------------------- page helpers


def test_head_steps_with_top_k_uses_the_topk_policy():
    m = default_inputs()
    run = head_steps(m["q"], m["k"], m["v"], causal=True, top_k=1)
    mask = run.steps.mask
    assert torch.equal(mask, run.allowed & run.budget_keep)
    assert (mask.sum(-1) == 1).all()  # one key per query
    # each query keeps its highest allowed scaled score
    scaled = run.steps.scaled.masked_fill(~run.allowed, float("-inf"))
    assert torch.equal(mask.float().argmax(-1), scaled.argmax(-1))
    torch.testing.assert_close(run.steps.weights.sum(-1), torch.ones(3, dtype=torch.float64))
    assert int(run.dropped_by_budget.sum()) == int(run.allowed.sum()) - 3


def test_head_steps_without_budget_is_the_plain_kernel():
    m = default_inputs()
    run = head_steps(m["q"], m["k"], m["v"], causal=False)
    assert run.budget_keep is None and run.allowed.all()
    assert not run.dropped_by_budget.any()
    ref = F.scaled_dot_product_attention(*(torch.tensor(m[x])[None] for x in "qkv"))[0]
    torch.testing.assert_close(run.steps.output, ref, atol=1e-12, rtol=0)


def test_matrix_text_round_trip_and_errors():
    m = np.array([[1, 0.5, -2], [0, 1e-3, 3]])
    np.testing.assert_array_equal(text_to_matrix(matrix_to_text(m)), m)
    for bad in ("", "1,2;3", "a,b", "1,nan", "1,inf"):
        with pytest.raises(ValueError):
            text_to_matrix(bad)


def test_resize_keeps_the_corner_and_gives_new_rows_distinct_vectors():
    m = np.arange(12, dtype=float).reshape(3, 4)
    grown = resize(m, 5, 6)
    np.testing.assert_array_equal(grown[:3, :4], m)
    assert grown[3].tolist() == [0, 0, 0, 1, 0, 0] and grown[4].tolist() == [0, 0, 0, 0, 1, 0]
    np.testing.assert_array_equal(resize(m, 2, 2), m[:2, :2])
    assert default_inputs(3, 4)["q"].shape == (3, 4)
