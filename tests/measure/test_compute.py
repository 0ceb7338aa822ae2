"""Tests for :mod:`attnviz.measure.compute`: shapes, parameter counts and the FLOP / KV formulas.

Expected numbers are hand counts from the published model sizes; the FLOP
checks use :class:`RowStats` built by hand (no forward pass).
"""

from __future__ import annotations

import pytest
import torch

from attnviz.engine.run import RowStats
from attnviz.measure.compute import Shape, compute_costs, linear_params, model_shape

# SmolLM2-135M: 30 layers, 9 query heads, 3 KV heads, d_head 64, hidden 576, MLP 1536, vocab 49152.
L, H, HKV, D, HIDDEN, INTER, VOCAB = 30, 9, 3, 64, 576, 1536, 49152
SMOLLM2_LINEAR = L * (HIDDEN * HIDDEN * 2 + HIDDEN * (HKV * D) * 2 + 3 * HIDDEN * INTER) + VOCAB * HIDDEN
SMOLLM2_SHAPE = Shape(layers=L, q_heads=H, kv_heads=HKV, d_head=D, bytes_per_value=4)


def _causal_pairs(n: int, keys: int | None = None) -> int:
    """Pairs per (layer, head): sum over queries i of min(K, i + 1)."""
    return sum(i + 1 if keys is None else min(keys, i + 1) for i in range(n))


def _full_stats(n: int) -> RowStats:
    pairs = L * H * n * (n + 1) // 2
    return RowStats(kept_pairs=pairs, allowed_pairs=pairs, scored_pairs=pairs, mass_sum=L * H * n,
                    mass_rows=L * H * n, kv_keys=n * HKV * L)


# --------------------------------------------------------------------------- shapes and parameter counts


def test_smollm2_hand_count_value():
    assert SMOLLM2_LINEAR == 134_479_872


def test_smollm2_shape_and_linear_params(smollm2):
    assert model_shape(smollm2.model) == SMOLLM2_SHAPE
    assert linear_params(smollm2.model) == SMOLLM2_LINEAR


def test_smollm2_output_layer_counted_although_tied(smollm2):
    model = smollm2.model
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight  # tied
    without_head = L * (HIDDEN * HIDDEN * 2 + HIDDEN * (HKV * D) * 2 + 3 * HIDDEN * INTER)
    assert linear_params(model) - without_head == VOCAB * HIDDEN


def test_minilm_shape_and_linear_params_skip_pooler(minilm):
    # BERT layer (hidden 384, MLP 1536, with biases): Q, K, V, O + MLP in + MLP out; the pooler is skipped.
    h, m = 384, 1536
    per_layer = 4 * (h * h + h) + (h * m + m) + (m * h + h)
    assert model_shape(minilm.model) == Shape(layers=6, q_heads=12, kv_heads=12, d_head=32, bytes_per_value=4)
    assert linear_params(minilm.model) == 6 * per_layer


def test_gpt2_conv1d_layers_and_tied_head_counted():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=2, n_head=4, n_embd=32, vocab_size=50, n_positions=16)
    model = GPT2LMHeadModel(cfg)
    e = 32
    per_layer = (e * 3 * e + 3 * e) + (e * e + e) + (e * 4 * e + 4 * e) + (4 * e * e + e)
    assert linear_params(model) == 2 * per_layer + 50 * e
    assert model_shape(model) == Shape(layers=2, q_heads=4, kv_heads=4, d_head=8, bytes_per_value=4)


def test_model_shape_reads_dtype_and_explicit_head_dim():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=16, vocab_size=20)
    model = LlamaForCausalLM(cfg).to(torch.float16)
    assert model_shape(model) == Shape(layers=1, q_heads=4, kv_heads=2, d_head=16, bytes_per_value=2)


# --------------------------------------------------------------------------- FLOP formulas


@pytest.mark.parametrize("n,low,high", [(128, 0.0155, 0.0170), (512, 0.058, 0.065)])
def test_attention_share_of_full_flops(n, low, high):
    """Attention is a small share of a 135M model's FLOPs: ~1.6 % at 128 tokens, ~6 % at 512."""
    full = _full_stats(n)
    c = compute_costs(full, full, SMOLLM2_SHAPE, SMOLLM2_LINEAR, n, causal=True, seconds=0.0)
    allowed = L * H * n * (n + 1) // 2
    attn = 4 * D * allowed
    dense = 2 * SMOLLM2_LINEAR * n
    assert c.attn_pairs == c.attn_pairs_full == allowed
    assert c.attn_flops == c.attn_flops_full == attn
    assert c.total_flops == c.total_flops_full == dense + attn
    share = c.attn_flops_full / c.total_flops_full
    assert low < share < high


def test_attention_share_hand_numbers():
    # 128 tokens: pairs 270 * 8256; 512 tokens: pairs 270 * 131328
    c128 = compute_costs(_full_stats(128), _full_stats(128), SMOLLM2_SHAPE, SMOLLM2_LINEAR, 128, True, 0.0)
    assert c128.attn_flops_full == 570_654_720
    assert c128.total_flops_full == 34_426_847_232 + 570_654_720
    c512 = compute_costs(_full_stats(512), _full_stats(512), SMOLLM2_SHAPE, SMOLLM2_LINEAR, 512, True, 0.0)
    assert c512.attn_flops_full == 9_077_391_360
    assert c512.total_flops_full == 137_707_388_928 + 9_077_391_360


def test_oracle_row_pays_full_score_cost():
    """topk K=32 at 128 tokens: every allowed pair scored, only kept pairs mixed."""
    n, k = 128, 32
    full = _full_stats(n)
    kept = L * H * _causal_pairs(n, k)
    row = RowStats(kept_pairs=kept, allowed_pairs=full.allowed_pairs, scored_pairs=full.allowed_pairs,
                   kv_keys=full.kv_keys)
    c = compute_costs(row, full, SMOLLM2_SHAPE, SMOLLM2_LINEAR, n, causal=True, seconds=0.5)
    assert c.attn_pairs == kept == 270 * (32 * 33 // 2 + 32 * 96)
    assert c.attn_flops == 2 * D * full.allowed_pairs + 2 * D * kept
    assert c.attn_flops_full == 4 * D * full.allowed_pairs
    assert c.total_flops == 2 * SMOLLM2_LINEAR * n + c.attn_flops
    assert c.total_flops_full == 2 * SMOLLM2_LINEAR * n + c.attn_flops_full
    assert c.kv_bytes == c.kv_bytes_full == n * HKV * L * 2 * D * 4
    assert c.seconds == 0.5


def test_window_row_saves_scores_and_kv():
    n, k = 128, 32
    full = _full_stats(n)
    kept = L * H * _causal_pairs(n, k)
    row = RowStats(kept_pairs=kept, allowed_pairs=full.allowed_pairs, scored_pairs=kept, kv_keys=k * HKV * L)
    c = compute_costs(row, full, SMOLLM2_SHAPE, SMOLLM2_LINEAR, n, causal=True, seconds=0.1)
    assert c.attn_flops == 4 * D * kept
    assert c.kv_bytes == 32 * 3 * 30 * 2 * 64 * 4 == 1_474_560
    assert c.kv_bytes_full == 128 * 3 * 30 * 2 * 64 * 4 == 5_898_240
    assert c.total_flops < c.total_flops_full


def test_encoder_has_no_kv_cache():
    shape = Shape(layers=6, q_heads=12, kv_heads=12, d_head=32, bytes_per_value=4)
    n = 10
    pairs = 6 * 12 * n * n  # bidirectional: every query sees every key
    full = RowStats(kept_pairs=pairs, allowed_pairs=pairs, scored_pairs=pairs, kv_keys=0)
    c = compute_costs(full, full, shape, 1000, n, causal=False, seconds=0.0)
    assert c.kv_bytes is None and c.kv_bytes_full is None
    assert c.attn_flops_full == 4 * 32 * pairs
    assert c.total_flops_full == 2 * 1000 * n + 4 * 32 * pairs
