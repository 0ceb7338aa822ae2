"""Attention's share of FLOPs vs context length, with the formulas of attnviz.measure.compute."""

import dataclasses

import numpy as np
import pytest
import torch

from attnviz.measure import encode_for, reference_pass
from attnviz.measure.compute import linear_params
from attnviz.measure.scaling import (
    KNOWN_CONFIGS,
    attention_flops,
    attention_share,
    config_from_model,
    crossover_tokens,
    dense_flops,
    share_curve,
    topk_pairs,
    topk_saving,
)

SMOL = KNOWN_CONFIGS["SmolLM2-135M"]
SMOL_LINEAR = 30 * (576 * 576 * 2 + 576 * 192 * 2 + 3 * 576 * 1536) + 49152 * 576


def test_smollm2_hand_count():
    assert SMOL.linear_params() == SMOL_LINEAR == 134_479_872
    assert attention_flops(SMOL, 128) == 4 * 64 * 9 * 30 * 128 * 129 // 2 == 570_654_720
    assert dense_flops(SMOL, 128) == 2 * SMOL_LINEAR * 128


@pytest.mark.parametrize("n, percent", [(128, 1.6), (512, 6.0), (1024, 12.0)])
def test_smollm2_published_anchors(n, percent):
    assert attention_share(SMOL, n) * 100 == pytest.approx(percent, abs=0.5)


@pytest.mark.parametrize("config", KNOWN_CONFIGS.values(), ids=list(KNOWN_CONFIGS))
def test_share_grows_with_length(config):
    n = np.arange(1, 20_000)
    curve = share_curve(config, n)
    assert (np.diff(curve) > 0).all() and 0 < curve[0] and curve[-1] < 1
    assert curve[1023] == pytest.approx(attention_share(config, 1024))


def test_crossover():
    n = crossover_tokens(SMOL)
    assert n == 7782  # n + 1 >= 2·P_linear / (d·H·L) = 7782.4
    assert attention_share(SMOL, n) >= 0.5 > attention_share(SMOL, n - 1)
    enc = dataclasses.replace(SMOL, causal=False)
    assert attention_flops(enc, 10) == 4 * 64 * 9 * 30 * 100
    m = crossover_tokens(enc)
    assert attention_share(enc, m) >= 0.5 > attention_share(enc, m - 1)


def test_gpt2_hand_count():
    per_layer = (768 * 2304 + 2304) + (768 * 768 + 768) + (768 * 3072 + 3072) + (3072 * 768 + 768)
    assert KNOWN_CONFIGS["GPT-2 small"].linear_params() == 12 * per_layer + 50257 * 768


def _meta_model(name: str):
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        MistralConfig,
        MistralForCausalLM,
    )

    c = KNOWN_CONFIGS[name]
    if name.startswith("GPT-2"):
        return GPT2LMHeadModel(GPT2Config(n_layer=c.layers, n_head=c.q_heads, n_embd=c.hidden, vocab_size=c.vocab))
    cls, cfg = (MistralForCausalLM, MistralConfig) if name.startswith("Mistral") else (LlamaForCausalLM, LlamaConfig)
    return cls(cfg(num_hidden_layers=c.layers, num_attention_heads=c.q_heads, num_key_value_heads=c.kv_heads,
                   hidden_size=c.hidden, intermediate_size=c.intermediate, vocab_size=c.vocab))


@pytest.mark.parametrize("name", KNOWN_CONFIGS)
def test_known_configs_match_transformers_models(name):
    with torch.device("meta"):  # shapes only: no memory for billions of weights
        model = _meta_model(name)
    assert KNOWN_CONFIGS[name].linear_params() == linear_params(model)
    config = config_from_model(model, name=name)
    assert dataclasses.replace(config, source="", exact_linear_params=None) == \
        dataclasses.replace(KNOWN_CONFIGS[name], source="")


def test_config_from_smollm2(smollm2):
    config = config_from_model(smollm2.model)
    assert config.linear_params() == SMOL_LINEAR
    assert dataclasses.replace(config, exact_linear_params=None).linear_params() == SMOL_LINEAR
    assert (config.layers, config.q_heads, config.kv_heads, config.d_head, config.mlp_matrices, config.causal) == \
        (30, 9, 3, 64, 3, True)
    # Same attention FLOPs as the measured full pass counts (attnviz.measure.compute).
    ref = reference_pass(smollm2, encode_for(smollm2, "The same formulas, counted two ways."))
    assert attention_flops(config, ref.n_tokens) == 4 * 64 * ref.stats.allowed_pairs


def test_config_from_minilm(minilm):
    config = config_from_model(minilm)  # a LoadedModel works too
    assert not config.causal and not config.lm_head and config.bias and config.mlp_matrices == 2
    assert config.linear_params() == linear_params(minilm.model)
    assert dataclasses.replace(config, exact_linear_params=None).linear_params() == config.linear_params()
    ref = reference_pass(minilm, encode_for(minilm, "An encoder sees every token."))
    assert attention_flops(config, ref.n_tokens) == 4 * config.d_head * ref.stats.allowed_pairs


def test_topk_pairs_hand_count():
    assert topk_pairs(38, 8) == 8 * 9 // 2 + 30 * 8 == 276  # the first 8 queries keep all their keys
    assert topk_pairs(5, 8) == 15  # every query keeps every earlier key
    assert topk_pairs(10, 3, causal=False) == 30


def test_topk_saving_is_at_most_half_of_attention():
    attn, whole = topk_saving(SMOL, 38, 8)
    assert attn == pytest.approx((741 - 276) / (2 * 741))
    assert whole == pytest.approx(attn * attention_share(SMOL, 38))
    assert topk_saving(SMOL, 38, 38) == (0.0, 0.0)
    long_attn, long_whole = topk_saving(SMOL, 32768, 8)
    assert 0.49 < long_attn < 0.5 and long_whole > 0.39


def test_topk_saving_matches_a_measured_row(smollm2):
    """The formula gives what a real top-k pass counts (the start page shows both side by side)."""
    from attnviz.budget import Budget
    from attnviz.measure import budget_pass
    from attnviz.policies import TopK

    enc = encode_for(smollm2, "The cat sat on the mat because it was tired.", 64)
    ref = reference_pass(smollm2, enc)
    row = budget_pass(smollm2, ref, [Budget(TopK(), keys=3)])[0]
    c = row.compute
    attn, whole = topk_saving(config_from_model(smollm2), enc.n_tokens, 3)
    assert attn == pytest.approx(1 - c.attn_flops / c.attn_flops_full)
    assert whole == pytest.approx(1 - c.total_flops / c.total_flops_full)
