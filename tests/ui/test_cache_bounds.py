"""Every cache the server keeps has a bound (README: "Caches and their bounds"): a walk over the code."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "app.py", *sorted((ROOT / "ui").glob("*.py")), *sorted((ROOT / "pages").glob("*.py")),
           *sorted((ROOT / "attnviz").rglob("*.py"))]
# functools caches without a size: each keyed by something of which a process has a handful (README's table).
UNSIZED_OK = {"parameters": "one per plug-in class", "_pool": "one per thread count",
              "_cache_kwarg": "one per model class", "_libc": "no argument"}


def _decorators(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for dec in node.decorator_list:
                yield node, dec


def _name(expr: ast.expr) -> str:
    target = expr.func if isinstance(expr, ast.Call) else expr
    return ast.unparse(target)


def test_every_cache_has_a_bound():
    unbounded = []
    for path in SOURCES:
        for fn, dec in _decorators(ast.parse(path.read_text(encoding="utf-8"))):
            name, where = _name(dec), f"{path.relative_to(ROOT)}:{fn.name}"
            keywords = {k.arg: k.value for k in dec.keywords} if isinstance(dec, ast.Call) else {}
            has_args = bool(fn.args.args or fn.args.kwonlyargs or fn.args.vararg)
            if name in ("st.cache_resource", "st.cache_data", "_shared"):
                # a function without arguments is one entry; otherwise max_entries (or _shared's own argument)
                if has_args and "max_entries" not in keywords and not (name == "_shared" and dec.args):
                    unbounded.append(where)
            elif name in ("functools.cache", "cache", "functools.lru_cache", "lru_cache"):
                size = keywords.get("maxsize", dec.args[0] if isinstance(dec, ast.Call) and dec.args else None)
                sized = isinstance(size, ast.Constant) and size.value is not None
                if not sized and has_args and fn.name not in UNSIZED_OK:
                    unbounded.append(where)
    assert not unbounded, f"caches without a bound (give one, or list them in UNSIZED_OK and the README): {unbounded}"
