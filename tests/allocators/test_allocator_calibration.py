"""The calibration disk cache: measured once, read back, and bounded in files."""

from types import SimpleNamespace

import numpy as np

from attnviz.allocators import calibration
from attnviz.allocators.calibration import cached_arrays

LM = SimpleNamespace(name="fake", weights="fake weights")


def test_a_calibration_is_measured_once_then_read_from_disk(monkeypatch, tmp_path):
    monkeypatch.setenv("ATTNVIZ_CACHE_DIR", str(tmp_path))
    calls = []

    def measure():
        calls.append(1)
        return {"kl": np.arange(3.0)}

    first = cached_arrays("marginal", LM, "rivers", 16, measure)
    again = cached_arrays("marginal", LM, "rivers", 16, measure)
    assert len(calls) == 1 and again["kl"].tolist() == first["kl"].tolist() == [0.0, 1.0, 2.0]


def test_the_calibration_folder_keeps_the_most_recently_used_files(monkeypatch, tmp_path):
    """Every length gets its own file: a public server asked for many lengths must not fill its disk."""
    monkeypatch.setenv("ATTNVIZ_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(calibration, "CALIBRATION_FILES", 4)
    calls = []

    def measure():
        calls.append(1)
        return {"kl": np.zeros(2)}

    folder = tmp_path / "calibration"
    for n in range(1, 4):
        cached_arrays("marginal", LM, "rivers", n, measure)
    for path, age in zip(sorted(folder.glob("*.npz"), key=lambda p: p.stat().st_mtime), (300, 200, 100), strict=True):
        stamp = path.stat().st_mtime - age  # written long ago, oldest first (n = 1, 2, 3)
        calibration.os.utime(path, (stamp, stamp))
    cached_arrays("marginal", LM, "rivers", 1, measure)  # n=1 read again: now the most recently used
    for n in range(4, 7):
        cached_arrays("marginal", LM, "rivers", n, measure)
    assert len(list(folder.glob("*.npz"))) == 4
    calls.clear()
    for n in (1, 4, 5, 6):  # the one read again and the newest are kept
        cached_arrays("marginal", LM, "rivers", n, measure)
    assert not calls
    cached_arrays("marginal", LM, "rivers", 2, measure)  # those unused since were removed
    assert calls
