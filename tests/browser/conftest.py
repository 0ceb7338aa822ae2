"""Fixtures of the browser tests: one server per test module, one Chromium, a fresh 1400x900 page per test.

Without Chromium or Playwright the browser tests are skipped, except under CI (CI=true), where they must run.
"""

from __future__ import annotations

import os

import pytest

from .harness import CHROMIUM, CHROMIUM_ARGS, MISSING, PAGE_S, Server, running, sync_playwright

if MISSING and not os.environ.get("CI"):
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running(Server(tmp_path_factory.mktemp("streamlit") / "streamlit.log")) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser():
    if MISSING:  # only under CI: there the browser test must run
        pytest.fail(f"the browser test cannot run under CI: {MISSING}", pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture()
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(PAGE_S * 1000)
    yield pg
    context.close()


