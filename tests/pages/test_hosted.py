"""The pages on a public server (ATTNVIZ_HOSTED=1, attnviz/hosting.py): what a visitor asks for beyond a cap is cut,
in one line, and the page goes on.  The caps are lowered here so that the runs stay short."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from attnviz import hosting

from .apptest import TEXT, run_page

ROOT = Path(__file__).resolve().parents[2]
SKIP = (".git", ".venv", ".hypothesis", "__pycache__", ".pytest_cache", ".ruff_cache")
"""Folders of the app's tree the check leaves out: git's, virtualenvs, and caches other tests and tools keep."""


@pytest.fixture
def hosted(monkeypatch):
    monkeypatch.setenv(hosting.HOSTED_ENV, "1")
    return monkeypatch


def infos(at) -> list[str]:
    return [i.value for i in at.info]


def test_the_frontier_sweeps_at_most_its_tokens_and_budgets(hosted):
    hosted.setattr(hosting, "HOSTED_SWEEP_TOKENS", 8)
    hosted.setattr(hosting, "HOSTED_SWEEP_BUDGETS", 3)
    at = run_page("frontier", fr_policies="window,sink_window", cap=32)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("at most 8 tokens in a sweep per request; 32 were asked for" in i for i in infos(at))
    assert any("at most 3 budgets per request" in i and "last policies chosen are left out" in i for i in infos(at))
    assert any(c.value.startswith("3 budgets on 8 tokens") for c in at.caption)
    assert len(at.dataframe[0].value) == 3


def test_generate_continues_at_most_its_new_tokens(hosted):
    hosted.setattr(hosting, "HOSTED_NEW_TOKENS", 3)
    at = run_page("generate", gen_new=100)
    assert not at.exception and not at.error
    assert any("gen_new=100 is not allowed (1–3)" in w.value for w in at.warning)
    slider = at.slider(key="gen_new")
    assert slider.max == 3 and slider.value == 3
    assert "at most 3 tokens" in slider.help


def test_compress_presses_at_most_its_context_and_continues_at_most_its_new_tokens(hosted):
    hosted.setattr(hosting, "HOSTED_CONTEXT_TOKENS", 6)
    hosted.setattr(hosting, "HOSTED_NEW_TOKENS", 2)
    at = run_page("compress", cp_context=9, cp_new=30)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("at most 6 tokens of context per request; 10 were asked for" in i for i in infos(at))
    warnings = " ".join(w.value for w in at.warning)
    assert "cp_context=9 does not fit" in warnings and "cp_new=30 is not allowed (1–2)" in warnings
    assert at.slider(key="cp_context").max == 6 and at.slider(key="cp_context").value == 6
    assert at.slider(key="cp_new").max == 2


def test_spend_calibrates_on_at_most_its_tokens_and_rows(hosted):
    hosted.setattr(hosting, "HOSTED_CALIBRATION_TOKENS", 8)
    hosted.setattr(hosting, "HOSTED_CALIBRATION_ROWS", 0.5)
    at = run_page("spend", **{"sp_alloc": "marginal", "sp_alloc.marginal.rows": "1.0"})
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("calibrates on at most 8 tokens of the calibration text (11 asked for)" in i for i in infos(at))
    assert any("budgets at most 50% of the calibration text's last rows (rows = 1 asked for)" in i for i in infos(at))
    assert any("calibration_tokens = 8" in c.value for c in at.caption)


def test_spend_s_frontier_sweeps_at_most_its_tokens_of_every_text(hosted):
    hosted.setattr(hosting, "HOSTED_SWEEP_TOKENS", 16)
    at = run_page("spend", sp_avg="1", cap="32")
    at.button(key="sp_frontier_go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("at most 16 tokens in a sweep per request; 32 were asked for" in i for i in infos(at))
    assert any(c.value.startswith("Mean over 2 texts (lighthouses: 16 tokens, rivers: 16 tokens)") for c in at.caption)


# Every page once (cheap settings, a calibrating allocator on Spend), then the command line in a process of its own.
PAGES_SCRIPT = r"""
import sys
from streamlit.testing.v1 import AppTest

app, text = sys.argv[1], sys.argv[2]
pages = {"start": {}, "explore": {}, "budget": {}, "frontier": {"fr_policies": "window"},
         "spend": {"sp_alloc": "marginal"}, "generate": {"gen_new": "2"}, "compress": {"cp_new": "2"}, "inside": {},
         "methods": {}}
for page, params in pages.items():
    at = AppTest.from_file(app, default_timeout=300)
    at.query_params.update({"text": text, **params})
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception and not at.error, (page, at.exception, [e.value for e in at.error])
"""
CLI_RUNS = [
    ["sweep", "--model", "smollm2", "--policy", "sink_window", "--keys", "6", "--allocator", "duo", "--json"],
    ["press", "--model", "smollm2", "--context", "6", "--press", "streaming_llm", "--ratio", "0.5", "--json"],
]


def _files(root: Path, skip: tuple[str, ...] = ()) -> dict[str, int]:
    """Every file and folder under ``root`` (not following links), with its modification time in ns."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip]
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            out[str(path)] = path.lstat().st_mtime_ns
    return out


def test_a_hosted_server_writes_only_under_its_cache_folder(tmp_path, smollm2):
    """The pages (AppTest) and the command line, hosted, with HOME, TMPDIR and the working directory fresh and
    empty: afterwards files exist only under ATTNVIZ_CACHE_DIR, and the app's own folder is unchanged."""
    from attnviz.models.gguf_cache import cache_root

    home, tmp, cwd, cache = (tmp_path / name for name in ("home", "tmp", "cwd", "cache"))
    for folder in (home, tmp, cwd, cache):
        folder.mkdir()
    # The converted SmolLM2 weights the session already made (converting again would take a minute).
    (cache / "smollm2").symlink_to(cache_root() / "smollm2", target_is_directory=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HOME", "XDG_CACHE_HOME", "PYTHONPATH", *hosting.LIBRARY_CACHES)}
    env.update(HOME=str(home), TMPDIR=str(tmp), ATTNVIZ_CACHE_DIR=str(cache), ATTNVIZ_HOSTED="1",
               HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(ROOT))
    before = _files(ROOT, skip=SKIP)
    runs = [[sys.executable, "-c", PAGES_SCRIPT, str(ROOT / "app.py"), TEXT]]
    runs += [[sys.executable, "-m", "attnviz", *argv, "--text", TEXT] for argv in CLI_RUNS]
    for argv in runs:
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (argv[1:4], done.stderr[-2000:])
    for folder in (home, tmp, cwd):
        assert not _files(folder), f"written outside the cache folder: {sorted(_files(folder))}"
    assert any((cache / "calibration").glob("marginal-*.npz")) and any((cache / "calibration").glob("duo-*.npz"))
    after = _files(ROOT, skip=SKIP)
    assert {p: t for p, t in after.items() if before.get(p) != t} == {}, "written in the app's folder"
