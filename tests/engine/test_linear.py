"""oneDNN's products (attnviz.engine.linear) equal ``F.linear`` to float32 rounding, and swapping a model's layers
changes nothing else: parameters, ties and gradients."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from attnviz.engine import linear as lin

F = torch.nn.functional


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("rows", [1, 2, 7, 128, 300])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_equals_f_linear_to_float32_rounding(rows, bias):
    x, w = _rand(rows, 96, seed=1), _rand(200, 96, seed=2)
    b = _rand(200, seed=3) if bias else None
    with torch.inference_mode():
        got, want = lin.linear(x, w, b), F.linear(x, w, b)
    assert got.shape == want.shape == (rows, 200) and got.dtype == torch.float32
    # sums of 96 products of N(0,1) values: float32 rounding of a different summation order, not a bf16 shortcut
    assert (got - want).abs().max().item() < 1e-4


def test_linear_takes_batched_inputs_and_a_transposed_weight():
    x, w = _rand(2, 5, 64, seed=4), _rand(64, 30, seed=5)  # w.T is (30, 64) with strides (1, 30)
    with torch.inference_mode():
        assert torch.allclose(lin.linear(x, w.T), x @ w, atol=1e-4)
        empty = lin.linear(torch.zeros(0, 64), w.T)
    assert empty.shape == (0, 30)


def test_rows_do_not_depend_on_their_neighbours():
    """A packed pass's rows are compared with the reference's: a row's product must not change with the batch."""
    x, w = _rand(300, 96, seed=6), _rand(200, 96, seed=7)
    with torch.inference_mode():
        whole = lin.linear(x, w)
        for m in (2, 33, 128):
            assert torch.equal(lin.linear(x[:m], w), whole[:m])


def test_without_onednn_it_is_f_linear_exactly(monkeypatch):
    monkeypatch.setattr(lin, "onednn_available", lambda: False)
    x, w = _rand(9, 16, seed=8), _rand(4, 16, seed=9)
    assert torch.equal(lin.linear(x, w), F.linear(x, w))
    assert lin.use_onednn(torch.nn.Sequential(torch.nn.Linear(3, 3))) == 0


@pytest.mark.parametrize("machine", ["arm64", "aarch64"])
def test_not_on_arm_where_it_was_never_measured(monkeypatch, machine):
    monkeypatch.setattr(lin.platform, "machine", lambda: machine)
    lin.onednn_available.cache_clear()
    try:
        assert lin.onednn_available() is False
    finally:
        monkeypatch.undo()
        lin.onednn_available.cache_clear()


def _tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=300, tie_word_embeddings=True)
    return LlamaForCausalLM(cfg).eval()


@pytest.mark.skipif(not lin.onednn_available(), reason="oneDNN's linear operator is not available here")
def test_a_swapped_model_keeps_its_parameters_and_ties_and_its_logits(monkeypatch):
    model = _tiny_llama()
    ids = torch.randint(0, 300, (1, 20), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        before = model(ids).logits
    params = {name: p.data_ptr() for name, p in model.named_parameters()}
    linears = sum(type(m) is torch.nn.Linear for m in model.modules())
    assert lin.use_onednn(model) == linears == 2 * 7 + 1  # q k v o gate up down per layer, and the output layer
    assert {name: p.data_ptr() for name, p in model.named_parameters()} == params
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert isinstance(model.lm_head, lin.OneDnnLinear) and isinstance(model.lm_head, torch.nn.Linear)
    products = []
    monkeypatch.setattr(lin, "linear", lambda *a: products.append(a) or F.linear(*a))
    with torch.inference_mode():
        model(ids)
    assert len(products) == linears  # every dense layer now multiplies through attnviz.engine.linear
    monkeypatch.undo()
    with torch.inference_mode():
        after = model(ids).logits
    assert (after - before).abs().max().item() < 1e-4  # and agrees with the stock products to rounding
    assert lin.use_onednn(model) == 0  # already swapped


def test_gradients_still_flow_through_a_swapped_layer():
    layer = torch.nn.Linear(8, 3)
    lin.use_onednn(torch.nn.Sequential(layer))
    x = _rand(4, 8, seed=10).requires_grad_()
    layer(x).sum().backward()
    assert x.grad is not None and layer.weight.grad is not None
    assert torch.allclose(layer.weight.grad, x.detach().sum(0).expand(3, 8))
