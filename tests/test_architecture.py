"""Architecture rules that keep policies plug-ins: no code outside ``attnviz/policies`` decides by a policy's name."""

from __future__ import annotations

import ast
from pathlib import Path

from attnviz.policies import POLICIES

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [p for d in ("attnviz", "pages", "ui") for p in (ROOT / d).rglob("*.py")] + [ROOT / "app.py"]


def _name_comparisons(path: Path, names: set[str]) -> list[str]:
    """``x == "topk"``, ``"h2o" != y``, ``p in ("topk", "topp")`` and the like in one file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Compare):
            continue
        for side in [node.left, *node.comparators]:
            consts = side.elts if isinstance(side, ast.Tuple | ast.List | ast.Set) else [side]
            hits = [c.value for c in consts if isinstance(c, ast.Constant) and c.value in names]
            if hits:
                found.append(f"{path.name}:{node.lineno} compares with {hits}")
    return found


def test_no_code_outside_the_policies_compares_a_policy_name():
    names = set(POLICIES) - {"full"}
    assert names >= {"topk", "topp", "window", "sink_window", "h2o", "random"}
    found = [hit for path in SOURCES if "policies" not in path.relative_to(ROOT).parts
             for hit in _name_comparisons(path, names)]
    assert found == []


def test_the_rule_finds_a_comparison(tmp_path):
    """The check above can fail: a comparison written the ways the old code wrote them is found."""
    sample = tmp_path / "probe.py"
    sample.write_text('if policy == "h2o" or "topp" != p or p in ("random", "x"):\n    pass\n')
    assert len(_name_comparisons(sample, {"h2o", "topp", "random"})) == 3
