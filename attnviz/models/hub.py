"""Any other name: a Hugging Face hub id or a local model folder, and why it could not be loaded.

Only architectures built into transformers are loaded (remote code is never run), as a causal LM with its head
or as a headless encoder, and only if their attention goes through transformers' attention interface.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

from .attention import is_custom_attention
from .download import Progress, discard_download, download_hub_copy, hub_cache_dir
from .errors import ModelLoadError, NotFound, short
from .specs import MODEL_ALIASES
from .weights import auto_class, load_weights


def load_any(name: str, attn_implementation: str) -> tuple[Any, Any, bool, str]:
    """``(model, tokenizer, causal, weights)`` for a local folder or a hub id; ``weights`` labels the source."""
    path = pathlib.Path(name).expanduser()
    if path.is_dir():
        source = str(path.resolve())
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"The folder {source} has no config.json, so it does not hold a transformers model.")
        model, tokenizer, causal = _load_transformers_model(source, attn_implementation, label=f"the folder {source}")
        return model, tokenizer, causal, f"local folder {source}"
    if _looks_like_path(name):
        raise ModelLoadError(
            f"{name!r} is not a folder: give an existing model folder, a Hugging Face id such as "
            "'HuggingFaceTB/SmolLM2-135M-Instruct', or one of: " + ", ".join(MODEL_ALIASES) + "."
        )
    model, tokenizer, causal = _load_transformers_model(name, attn_implementation, label=f"the hub model {name!r}")
    return model, tokenizer, causal, f"Hugging Face hub: {name}"


def load_hub_copy(hub_id: str, causal: bool, attn_implementation: str,
                  progress: Progress | None = None) -> tuple[Any, Any]:
    """For the bundled models' fallbacks: ``(model, tokenizer)`` from the hub (or its local cache when offline).

    ``progress(done, total)`` (bytes) follows the download (:func:`.download.download_hub_copy`). Downloaded files
    that do not load are removed, so that trying again downloads them anew.
    """
    folder = download_hub_copy(hub_id, progress)
    try:
        model, tokenizer, _ = _load_transformers_model(
            str(folder), attn_implementation, label=f"the hub copy {hub_id}", expect_causal=causal
        )
    except ModelLoadError as exc:
        discard_download(folder)
        raise ModelLoadError(f"the downloaded files do not load ({str(exc).rstrip('.')}); they were removed, so "
                             "trying again downloads them anew") from exc
    return model, tokenizer


def hub_problem(hub_id: str, exc: ModelLoadError) -> str:
    """Why the hub fallback of a bundled model failed, as one clause."""
    if isinstance(exc, NotFound):
        if _hub_offline():
            return f"its Hugging Face hub copy {hub_id} is not in the local cache and the hub is unreachable (offline)"
        return f"its Hugging Face hub copy {hub_id} could not be downloaded ({str(exc).rstrip('.')})"
    return f"its Hugging Face hub copy {hub_id} failed to load ({str(exc).rstrip('.')})"


def is_causal(config: Any, label: str = "the model") -> bool:
    """Causal LM (True) or bidirectional encoder (False); raises for what attnviz cannot show."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    model_type = getattr(config, "model_type", None)
    if getattr(config, "is_encoder_decoder", False):
        raise ModelLoadError(
            f"{label[0].upper()}{label[1:]} ({model_type}) is an encoder-decoder model; encoder-decoder models are "
            "not supported: use a causal LM (e.g. SmolLM2, GPT-2) or an encoder (e.g. BERT, MiniLM)."
        )
    if getattr(config, "is_decoder", False):
        return True
    architectures = getattr(config, "architectures", None) or []
    if any(arch.endswith(("ForCausalLM", "LMHeadModel")) for arch in architectures):
        return True
    # bert, roberta, electra... are in both mappings (they have an optional causal head): encoders unless said above.
    if model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return False
    if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return True
    raise ModelLoadError(
        f"{label[0].upper()}{label[1:]} ({model_type}) is neither a causal language model nor a BERT-like encoder, "
        "so attnviz cannot show its attention."
    )


def _looks_like_path(name: str) -> bool:
    """A name meant as a folder (so "not found" must not be blamed on the hub)."""
    return (
        os.path.isabs(name)
        or name.startswith(("./", "../", "~", ".\\", "..\\"))
        or "\\" in name
        or os.path.exists(os.path.expanduser(name))
    )


def _hub_offline() -> bool:
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:  # pragma: no cover - a dependency of transformers
        return os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def _not_found_message(name: str, exc: BaseException | None = None) -> str:
    """Why a hub id could not be loaded: offline, unreachable, or not on the hub."""
    chain = []
    while exc is not None and len(chain) < 10:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    kinds = {type(e).__name__ for e in chain}
    text = " ".join(str(e) for e in chain)
    if kinds & {"RepositoryNotFoundError", "HFValidationError"} or "not a valid model identifier" in text:
        why = "there is no such model on the Hugging Face hub (or it is private)"
    elif "GatedRepoError" in kinds:
        why = "it is a gated model on the Hugging Face hub, which needs a login and accepted terms"
    elif _hub_offline():
        why = "the Hugging Face hub is unreachable (offline mode: HF_HUB_OFFLINE is set), or the id does not exist"
    else:
        why = "the Hugging Face hub is unreachable, or the id does not exist"
    return (
        f"Model {name!r} could not be found: it is not a local folder nor in the local Hugging Face cache, and {why}. "
        "Check the name, or allow access to the Hugging Face hub."
    )


def _load_transformers_model(
    source: str, attn_implementation: str, label: str, expect_causal: bool | None = None
) -> tuple[Any, Any, bool]:
    """``(model, tokenizer, causal)`` for a local folder or hub id, without ever running remote code."""
    import transformers
    from transformers import AutoConfig, AutoTokenizer, PretrainedConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    is_local = os.path.isdir(source)
    # A folder never reaches out to the hub (transformers would look for optional files in a hub cache's folder);
    # a hosted server writes hub downloads only under its cache folder (None: Hugging Face's own cache).
    if is_local:
        where: dict[str, Any] = {"local_files_only": True}
    else:
        where = {} if hub_cache_dir() is None else {"cache_dir": str(hub_cache_dir())}
    try:
        config_dict, _ = PretrainedConfig.get_config_dict(source, **where)
    except Exception as exc:  # noqa: BLE001 - OSError, HTTP errors, bad JSON...
        if is_local:
            raise ModelLoadError(f"Could not read the config.json of {label}: {short(exc)}") from exc
        raise NotFound(_not_found_message(source, exc)) from exc
    model_type = config_dict.get("model_type")
    if not model_type:
        raise ModelLoadError(f"The config.json of {label} has no model_type, so transformers cannot build it.")
    if model_type not in CONFIG_MAPPING_NAMES:
        raise ModelLoadError(
            f"{label[0].upper()}{label[1:]} has model type {model_type!r}, which transformers "
            f"{transformers.__version__} does not implement: it would need the model's own code, which attnviz "
            "never runs. Pick a model with a built-in architecture (or upgrade transformers if it is a new one)."
        )
    try:
        config = AutoConfig.from_pretrained(source, **where)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"The config.json of {label} is invalid: {short(exc)}") from exc

    causal = is_causal(config, label)
    if expect_causal is not None and causal != expect_causal:
        raise ModelLoadError(f"{label} is not the expected {'causal' if expect_causal else 'encoder'} model.")
    auto_cls = auto_class(causal)
    try:
        model_classes = auto_cls._model_mapping[type(config)]
    except KeyError as exc:
        kind = "causal language model" if causal else "encoder"
        raise ModelLoadError(f"transformers cannot load {label} ({model_type}) as a {kind}.") from exc
    if not isinstance(model_classes, (tuple, list)):
        model_classes = (model_classes,)
    if is_custom_attention(attn_implementation):
        for cls in model_classes:
            if not getattr(cls, "_supports_attention_backend", False):
                raise ModelLoadError(
                    f"{label[0].upper()}{label[1:]} ({cls.__name__}) computes attention in its own code instead of "
                    f"through transformers' attention interface, so attnviz cannot see or budget it. Pick another "
                    "model (e.g. Llama-, GPT-2- or BERT-like), or use attn_implementation='eager'."
                )

    try:
        model = load_weights(auto_cls, source, attn_implementation, config=config, **where)
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001
        if not is_local and isinstance(exc, OSError):
            raise NotFound(_not_found_message(source, exc)) from exc
        raise ModelLoadError(f"Could not load the weights of {label}: {short(exc)}") from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **where)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"Could not load the tokenizer of {label}: {short(exc)}") from exc
    # transformers 5 builds an empty tokenizer (only special tokens) when a folder has no tokenizer files.
    if tokenizer is None or isinstance(tokenizer, bool) or getattr(tokenizer, "vocab_size", 1) == 0:
        raise ModelLoadError(f"{label[0].upper()}{label[1:]} has no tokenizer (no tokenizer files found).")
    return model, tokenizer, causal
