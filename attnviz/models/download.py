"""A bundled model's Hugging Face hub copy, downloaded file by file with progress, into the right cache.

attnviz downloads the few files it loads itself (rather than letting ``from_pretrained`` fetch them) so that a
caller can show progress ("x of y MB"), so that a hosted server writes them under its own cache folder
(:func:`hub_cache_dir`), and so that a failed or damaged download is one clear :class:`ModelLoadError`.
"""

from __future__ import annotations

import logging
import pathlib
import threading
from collections.abc import Callable
from typing import Any

from ..hosting import is_hosted
from .errors import ModelLoadError, NotFound, short

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` while downloading, both in bytes (``total`` of every file together)."""

# What transformers reads for a causal LM or an encoder and its tokenizer; a repository has some of these.
# Anything else in a repository (ONNX exports, other formats, training logs) is never downloaded.
HUB_FILES = (
    "config.json", "generation_config.json", "model.safetensors", "model.safetensors.index.json",
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "vocab.json", "vocab.txt", "merges.txt", "tokenizer.model", "chat_template.jinja",
)
_SHARD_PREFIX = "model-"  # model-00001-of-00002.safetensors, listed by model.safetensors.index.json


def hub_cache_dir() -> pathlib.Path | None:
    """Where hub downloads go: ``cache_root()/hub`` on a hosted server (which writes nothing outside its cache
    folder), else None (Hugging Face's own cache, ``HF_HOME``)."""
    if not is_hosted():
        return None
    from .gguf_cache import cache_root

    return cache_root() / "hub"


def wanted(filename: str) -> bool:
    """Whether attnviz downloads this file of a repository (top-level model, config and tokenizer files only)."""
    return filename in HUB_FILES or (
        "/" not in filename and filename.startswith(_SHARD_PREFIX) and filename.endswith(".safetensors")
    )


def download_hub_copy(hub_id: str, progress: Progress | None = None) -> pathlib.Path:
    """The local folder holding ``hub_id``'s model, config and tokenizer files, downloaded if not yet cached.

    Offline (``HF_HUB_OFFLINE``), or when the hub cannot be reached, the files already in the cache are used.
    ``progress(done, total)`` (bytes) is called as the files arrive.

    Raises:
        NotFound: the hub cannot be reached (or is offline) and the files are not in the cache.
        ModelLoadError: the hub answered but a download failed (timeout, cut off, wrong size).
    """
    from huggingface_hub import HfApi, constants, snapshot_download

    cache_dir = hub_cache_dir()
    if not constants.HF_HUB_OFFLINE:
        try:
            info = HfApi(endpoint=constants.ENDPOINT).model_info(
                hub_id, files_metadata=True, timeout=constants.HF_HUB_ETAG_TIMEOUT
            )
        except Exception as exc:  # noqa: BLE001 - unreachable, slow, or an error page: try the local cache
            listing_error: Exception | None = exc
        else:
            return _download_files(hub_id, info, cache_dir, progress)
    else:
        listing_error = None
    try:
        folder = snapshot_download(hub_id, allow_patterns=[*HUB_FILES, f"{_SHARD_PREFIX}*.safetensors"],
                                   cache_dir=cache_dir, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - not cached (or only partly)
        why = "offline" if constants.HF_HUB_OFFLINE else _why_unreachable(listing_error)
        raise NotFound(f"not in the local cache, and the Hugging Face hub is {why}") from (
            listing_error or exc)
    return pathlib.Path(folder)


def discard_download(folder: pathlib.Path) -> None:
    """Remove a downloaded snapshot that does not load (its files and the cached blobs they point to), so the
    next attempt downloads them again instead of loading the same damaged files."""
    for path in folder.iterdir():
        try:
            target = path.resolve()
            path.unlink()
            if target != path and target.is_file():
                target.unlink()
        except OSError as exc:
            logger.warning("Could not remove the damaged download %s (%s).", path, exc)


def _why_unreachable(exc: BaseException | None) -> str:
    """The listing's failure as a few words: "unreachable", "too slow to answer (timed out)", ..."""
    names = set()
    while exc is not None and len(names) < 10:
        names.add(type(exc).__name__)
        exc = exc.__cause__ or exc.__context__
    if any("Timeout" in n for n in names):
        return "too slow to answer (timed out)"
    if names & {"RepositoryNotFoundError", "GatedRepoError"}:
        return "not serving this model (not found or gated)"
    return "unreachable"


def _download_files(hub_id: str, info: Any, cache_dir: pathlib.Path | None, progress: Progress | None) -> pathlib.Path:
    """Download the wanted files of one revision (``info`` from ``model_info(files_metadata=True)``)."""
    from huggingface_hub import constants, hf_hub_download

    files = [(s.rfilename, s.size or 0) for s in (info.siblings or []) if wanted(s.rfilename)]
    names = {name for name, _ in files}
    if "config.json" not in names or not names & {"model.safetensors", "model.safetensors.index.json"}:
        raise ModelLoadError(f"{hub_id} on the Hugging Face hub has no config.json and safetensors weights")
    total = sum(size for _, size in files)
    meter = _Meter(total, progress)
    folder = None
    for name, _ in sorted(files, key=lambda item: item[1]):  # small files first: a broken hub shows up fast
        try:
            path = hf_hub_download(hub_id, name, revision=info.sha, cache_dir=cache_dir,
                                   endpoint=constants.ENDPOINT, etag_timeout=constants.HF_HUB_ETAG_TIMEOUT,
                                   tqdm_class=meter.bar_class())
        except Exception as exc:  # noqa: BLE001 - timeouts, cut connections, size mismatches, HTTP errors
            raise ModelLoadError(f"downloading {name} of {hub_id} from the Hugging Face hub failed "
                                 f"({_download_problem(exc)})") from exc
        meter.finish_file()
        folder = pathlib.Path(path).parent
    assert folder is not None
    return folder


def _download_problem(exc: BaseException) -> str:
    """One clause for a failed file download."""
    names, texts = set(), []
    while exc is not None and len(names) < 10:
        names.add(type(exc).__name__)
        texts.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    text = " ".join(texts)
    if any("Timeout" in n for n in names) or "timed out" in text.lower():
        return "the hub was too slow to answer: timed out"
    if "Consistency check failed" in text or "RemoteProtocolError" in names or "incomplete" in text.lower():
        return "the file arrived cut short"
    if names & {"ConnectError", "LocalEntryNotFoundError"}:
        return "the hub became unreachable"
    return short(exc)


class _Meter:
    """Adds up the bytes of every file's download and reports them through ``progress``."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total = total
        self.progress = progress
        self.done = 0  # bytes of the files finished
        self.current = 0  # bytes of the file downloading now
        self.lock = threading.Lock()

    def report(self) -> None:
        if self.progress is not None:
            self.progress(min(self.done + self.current, self.total), self.total)

    def finish_file(self) -> None:
        with self.lock:
            self.done += self.current
            self.current = 0
        self.report()

    def bar_class(self) -> type:
        """A class huggingface_hub uses as its progress bar (``tqdm_class``): it counts, and draws nothing."""
        meter = self

        class _Bar:
            def __init__(self, *args: Any, total: int | None = None, initial: int = 0, **kwargs: Any) -> None:
                self.total, self.n = total, initial
                with meter.lock:
                    meter.current = initial

            def update(self, n: int | float | None = 1) -> None:
                self.n += int(n or 0)
                with meter.lock:
                    meter.current = max(0, self.n)
                meter.report()

            def __enter__(self) -> _Bar:
                return self

            def __exit__(self, *exc: Any) -> None:
                return None

            def close(self) -> None:
                return None

            def refresh(self, *args: Any, **kwargs: Any) -> None:
                return None

            def set_postfix_str(self, *args: Any, **kwargs: Any) -> None:
                return None

            def set_description(self, *args: Any, **kwargs: Any) -> None:
                return None

        return _Bar

