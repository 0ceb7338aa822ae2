"""The ``attnviz`` package is the app's logic without Streamlit: importing any of its modules imports no Streamlit.

Every module is imported, in a fresh interpreter (this one has Streamlit loaded by the page tests).
``attnviz.__main__`` is left out: importing it runs the command line and exits.  It imports only ``attnviz.cli``.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

IMPORT_ALL = """
import importlib, json, pkgutil, sys

import attnviz

def fail(name):
    raise ImportError(f"cannot walk {name}")

modules, first_with_streamlit = [], None
for info in pkgutil.walk_packages(attnviz.__path__, "attnviz.", onerror=fail):
    if info.name == "attnviz.__main__":
        continue
    importlib.import_module(info.name)
    modules.append(info.name)
    if first_with_streamlit is None and "streamlit" in sys.modules:
        first_with_streamlit = info.name
print(json.dumps({"modules": modules, "first_with_streamlit": first_with_streamlit,
                  "streamlit": sorted(m for m in sys.modules if m.split(".")[0] == "streamlit")}))
"""


def test_no_attnviz_module_imports_streamlit():
    proc = subprocess.run([sys.executable, "-c", IMPORT_ALL], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    on_disk = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in (ROOT / "attnviz").rglob("*.py")
    }
    assert set(result["modules"]) == on_disk - {"attnviz", "attnviz.__main__"}  # the walk found every module
    assert not result["streamlit"], (
        f"streamlit was first loaded while importing {result['first_with_streamlit']} (or a module it imports)")
