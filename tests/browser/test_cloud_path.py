"""The Cloud path end to end: the app run by a venv with requirements.txt alone (as Streamlit Community Cloud
installs it: no bundled-model packages), hosted, online, with a stand-in hub (tests/cloud/hub_stand_in.py) serving
the bundled models' own files.  The hub is unreachable at first (one message and a Try again button), then comes
back: the app downloads SmolLM2 with a progress bar, labels every page with the hub copy, gives the bundled
server's numbers, and writes its downloads only under its cache folder.

The venv is ``$ATTNVIZ_CLOUD_PYTHON`` (.ci/run builds it while the other tests run; this test waits for its
``.installed-cloud`` marker), else ``.venv-cloud`` (``make cloud-venv``).  Under CI a missing venv fails the test.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from cloud.hub_stand_in import HubStandIn  # tests/ is on sys.path (rootdir-based packages)

from attnviz.models.specs import MINILM, SMOLLM2

from .harness import PAGE_S, ROOT, Server, assert_no_failure, expect, metric_values, running, wait_for_page

CLOUD_WAIT_S = 900  # .ci/run builds the venv beside `make test`: about 3 minutes, longer on busy cores
HUB_LABEL = f"Hugging Face hub: {SMOLLM2.hub_id}"
# every page that runs the model, and the query that keeps it short (the Generate page labels after generating)
MODEL_PAGES = {"explore": "", "budget": "", "frontier": "", "spend": "", "compress": "", "generate": "?gen_new=2"}


def _cloud_python() -> str:
    """The requirements-only venv's python; waits while .ci/run is still building it."""
    python = Path(os.environ.get("ATTNVIZ_CLOUD_PYTHON") or ROOT / ".venv-cloud" / "bin" / "python")
    marker = python.parent.parent / ".installed-cloud"
    deadline = time.monotonic() + (CLOUD_WAIT_S if os.environ.get("ATTNVIZ_CLOUD_PYTHON") else 0)
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(5)
    if not marker.exists():
        why = f"the requirements-only venv {python.parent.parent} is missing (make cloud-venv)"
        if os.environ.get("CI"):
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    return str(python)


def _repo_files(lm) -> dict[str, Path]:
    folder = Path(lm.model.config._name_or_path)  # the converted-weights cache folder, or the package's folder
    return {p.name: p for p in folder.iterdir() if p.is_file() and p.name != "attnviz-cache.json"}


@pytest.fixture(scope="module")
def cloud(smollm2, minilm, tmp_path_factory):
    """``(server, hub, tmp)``: the stand-in hub (stopped: unreachable) and the app on the requirements-only venv."""
    python = _cloud_python()
    hub = HubStandIn({SMOLLM2.hub_id: _repo_files(smollm2), MINILM.hub_id: _repo_files(minilm)}).start()
    hub.stop()  # its port is kept: the app starts with the hub unreachable
    hub.rate = 150e6  # bytes/s: SmolLM2's 540 MB take about 4 s, long enough to see the progress
    tmp = tmp_path_factory.mktemp("cloud")
    env = {"HF_HUB_OFFLINE": None, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp / "hf-home"),
           "ATTNVIZ_CACHE_DIR": str(tmp / "cache"), "ATTNVIZ_HOSTED": "1",
           "HF_HUB_ETAG_TIMEOUT": "5", "HF_HUB_DOWNLOAD_TIMEOUT": "10"}
    try:
        with running(Server(tmp / "streamlit.log", env=env, python=python)) as server:
            yield server, hub, tmp
    finally:
        hub.stop()


@pytest.fixture(scope="module")
def bundled_server(server):
    """The usual server (conftest.py), on the bundled packages' weights: the numbers the Cloud path must match."""
    return server


def test_cloud_path_downloads_labels_and_matches_the_bundled_model(cloud, bundled_server, browser):
    server, hub, tmp = cloud
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(PAGE_S * 1000)
    try:
        # 1. The hub is unreachable: one clear message and a Try again button, no traceback.
        page.goto(server.url)
        error = page.locator('[data-testid="stAlertContentError"]').first
        expect(error).to_contain_text("unreachable", timeout=120_000)
        expect(error).to_contain_text(SMOLLM2.hub_id)
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.get_by_text("Traceback").count() == 0
        retry = page.get_by_role("button", name="Try again")
        expect(retry).to_be_visible()

        # 2. The hub is back: Try again downloads, showing progress, then prepares the model.
        hub.start()
        retry.click()
        progress = page.get_by_text(f"Downloading {SMOLLM2.title} from the Hugging Face hub (")
        progress.first.wait_for(state="visible", timeout=60_000)
        page.screenshot(path=str(tmp / "cloud-downloading.png"))
        wait_for_page(page, server, "")
        assert_no_failure(page, server, "start page after Try again")
        expect(page.get_by_text(HUB_LABEL).first).to_be_visible()
        cloud_metrics = metric_values(page)

        # 3. Every page that runs the model says which weights ran.
        for path, query in MODEL_PAGES.items():
            page.goto(f"{server.url}/{path}{query}")
            label = page.locator('[data-testid="stCaptionContainer"]', has_text=HUB_LABEL).first
            label.wait_for(state="visible", timeout=PAGE_S * 1000)
            assert page.get_by_text("Downloading").count() == 0  # downloaded once per server
    finally:
        context.close()

    # 4. Hosted, every download lies under the cache folder; Hugging Face's own cache stays empty.
    assert any((tmp / "cache" / "hub").rglob("model.safetensors"))
    assert not list((tmp / "hf-home").rglob("*.safetensors"))

    # 5. The bundled server (the packages' weights, the main venv) shows the same numbers.
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(PAGE_S * 1000)
    try:
        page.goto(bundled_server.url)
        wait_for_page(page, bundled_server, "")
        assert page.get_by_text("bundled SmolLM2-135M-Instruct").count() > 0
        assert metric_values(page) == cloud_metrics
    finally:
        context.close()
