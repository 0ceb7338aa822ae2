"""What the page tests share: the app, a short text that keeps reruns fast, and opening one page."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")
TEXT = "The cat sat on the mat because it was tired."  # 11 SmolLM2 tokens


def run_page(page: str, **params) -> AppTest:
    """Run ``pages/<page>.py`` (through app.py's navigation) with ``TEXT`` and ``params`` as URL parameters."""
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params.update({"text": TEXT, **{k: str(v) for k, v in params.items()}})
    return at.switch_page(f"pages/{page}.py").run()


def metrics(at: AppTest) -> dict[str, str]:
    """The page's metrics, label -> shown value."""
    return {m.label: m.value for m in at.metric}
