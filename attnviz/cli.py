"""Command line: ``python -m attnviz sweep ...`` and ``python -m attnviz bench``.

The ``sweep --json`` output is a contract other tools rely on: one JSON object
on stdout, progress and warnings on stderr, and bad input ending with exit
status 2 and a single line on stderr (no usage dump, no traceback).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from .allocators import ALLOCATORS
from .budget import Budget, BudgetError
from .measure.frontier import row_label
from .params import ParamError
from .plugins import PluginError, load_plugins
from .policies import POLICIES
from .presses import PRESSES
from .text import DEFAULT_MAX_TOKENS, TextError

__all__ = ["main", "budgets_from_args", "allocators_from_args"]


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print the whole usage first
        raise UsageError(message)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _compression(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got '{text}'") from None
    if math.isnan(value) or not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1) (the share removed), got {text}")
    return value


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got '{text}'") from None
    if math.isnan(value) or not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def _param(text: str) -> tuple[str, str]:
    name, eq, value = text.partition("=")
    if not eq or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got '{text}'")
    return name.strip(), value


def _policies_help() -> str:
    """Every registered policy (plug-ins included), its summary and its parameters, for ``sweep --help``."""
    lines = ["policies:"]
    for name, cls in POLICIES.items():
        lines.append(f"  {name:<13} {cls.summary}")
        for p in cls.parameters():
            lines.append(f"  {'':<13}   --param {p.name}=VALUE  {p.help or ''} ({p.allowed()}; default {p.default})")
    lines.append("allocators (--allocator; how one total of uniform K's kept pairs is spent):")
    for name, cls in ALLOCATORS.items():
        lines.append(f"  {name:<13} {cls.summary}")
        for p in cls.parameters():
            lines.append(f"  {'':<13}   --allocator-param {p.name}=VALUE  {p.help or ''} "
                         f"({p.allowed()}; default {p.default})")
    return "\n".join(lines)


def _presses_help() -> str:
    """Every registered press, the kvpress class it reproduces, and its parameters, for ``press --help``."""
    lines = ["presses:"]
    for name, cls in PRESSES.items():
        lines.append(f"  {name:<19} {cls.summary} (kvpress {cls.kvpress_class or '-'})")
        for p in cls.parameters():
            lines.append(f"  {'':<19}   --param {p.name}=VALUE  {p.help or ''} ({p.allowed()}; default {p.default})")
    return "\n".join(lines)


def _parser() -> _Parser:
    parser = _Parser(prog="python -m attnviz", description="attnviz: attention budgets on real transformers")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sw = sub.add_parser("sweep", help="quality and compute of a policy at one or more budgets",
                        epilog=_policies_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    sw.add_argument("--model", default="smollm2", help="smollm2 (default), minilm, or a Hugging Face id / folder")
    src = sw.add_mutually_exclusive_group()
    src.add_argument("--text", help="the text to analyse")
    src.add_argument("--text-file", type=Path, help="a UTF-8 file with the text to analyse")
    sw.add_argument("--policy", required=True, help=f"one of: {', '.join(POLICIES)}")
    sw.add_argument("--keys", type=_positive_int, action="append", default=[], metavar="K",
                    help="keep K keys per query (repeatable; one row each)")
    sw.add_argument("--budget", type=_ratio, action="append", default=[], metavar="R",
                    help="keep a ratio R in (0, 1] of each query's keys; for topp the mass p (repeatable)")
    sw.add_argument("--param", type=_param, action="append", default=[], metavar="NAME=VALUE",
                    help="a parameter of the policy (repeatable; see the list below)")
    sw.add_argument("--allocator", action="append", default=[], metavar="NAME",
                    help=f"how the total is spent: {', '.join(ALLOCATORS)} (repeatable; each allocator x each "
                         "size is one row; default uniform). --keys K then means as many kept pairs in all as "
                         "uniform K")
    sw.add_argument("--allocator-param", type=_param, action="append", default=[], metavar="NAME=VALUE",
                    help="a parameter of the allocators that have it (repeatable)")
    sw.add_argument("--sinks", default=None, metavar="S", help="short for --param sinks=S (sink_window, default 4)")
    sw.add_argument("--seed", default=None, help="short for --param seed=N (random, default 0)")
    sw.add_argument("--max-tokens", type=_positive_int, default=DEFAULT_MAX_TOKENS,
                    help=f"cap on the text length in tokens (default {DEFAULT_MAX_TOKENS})")
    sw.add_argument("--batch-size", type=_positive_int, default=None, help="budgets per batched forward")
    sw.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    pr = sub.add_parser("press", help="compress a context's KV cache with a press (as NVIDIA kvpress) and "
                                      "measure the continuation", epilog=_presses_help(),
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    pr.add_argument("--model", default="smollm2", help="smollm2 (default) or a causal Hugging Face id / folder")
    psrc = pr.add_mutually_exclusive_group()
    psrc.add_argument("--text", help="the text: its first C tokens are the context, the rest the continuation")
    psrc.add_argument("--text-file", type=Path, help="a UTF-8 file with the text")
    pr.add_argument("--context", type=_positive_int, required=True, metavar="C",
                    help="context length in tokens (shorter than the text)")
    pr.add_argument("--press", required=True, help=f"one of: {', '.join(PRESSES)}")
    pr.add_argument("--ratio", type=_compression, action="append", default=[], metavar="R",
                    help="compression ratio in [0, 1): the share of the context's cache removed, as in kvpress "
                         "(repeatable; one row each)")
    pr.add_argument("--param", type=_param, action="append", default=[], metavar="NAME=VALUE",
                    help="a parameter of the press (repeatable; see the list below)")
    pr.add_argument("--max-tokens", type=_positive_int, default=DEFAULT_MAX_TOKENS,
                    help=f"cap on the text length in tokens (default {DEFAULT_MAX_TOKENS})")
    pr.add_argument("--positions", action="store_true", help="list every kept position per layer and KV head")
    pr.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    bench = sub.add_parser("bench", help="benchmark ratios against transformers' eager attention")
    bench.add_argument("--tokens", type=_positive_int, nargs="+", default=[128, 512])
    bench.add_argument("--repeat", type=_positive_int, default=3, help="tries per figure (median)")
    bench.add_argument("--json", action="store_true")
    return parser


def allocators_from_args(names: list[str], params: list[tuple[str, str]]) -> list:
    """One allocator per ``--allocator`` (``uniform`` if none), each with the ``--allocator-param`` values it
    has; a parameter no chosen allocator has, or one given twice, is an error (BudgetError)."""
    names = names or ["uniform"]
    given: dict[str, str] = {}
    for name, value in params:
        if name in given:
            raise UsageError(f"allocator parameter {name} is given twice")
        given[name] = value
    for name in names:
        ALLOCATORS.cls_of(name)
    for key in given:
        if not any(key in {p.name for p in ALLOCATORS[n].parameters()} for n in names):
            raise ParamError(f"no chosen allocator ({', '.join(names)}) has a parameter '{key}'")
    out = []
    for name in dict.fromkeys(names):
        mine = {p.name for p in ALLOCATORS[name].parameters()}
        out.append(ALLOCATORS.from_text(name, {k: v for k, v in given.items() if k in mine}))
    return out


def budgets_from_args(policy: str, keys: list[int], ratios: list[float], params: dict[str, str] | None = None,
                      allocators: list | None = None) -> list[Budget]:
    """One budget per allocator (default uniform) and ``--keys`` then ``--budget``, in the order given;
    validated (BudgetError)."""
    allocators = allocators or [ALLOCATORS.get("uniform")]
    pol = POLICIES.from_text(policy, params or {})
    if pol.reference:
        if keys or ratios:
            raise BudgetError(f"policy '{policy}' keeps every key: give no --keys or --budget")
        budgets = [Budget(pol)]
    else:
        if not keys and not ratios:
            raise BudgetError(f"policy '{policy}' needs a size: --keys K or --budget R")
        if pol.ratio_only and keys:
            raise BudgetError(f"policy '{policy}' takes a probability mass p with --budget, not --keys")
        budgets = [Budget(pol, keys=k, allocator=a) for a in allocators for k in keys]
        budgets += [Budget(pol, ratio=r, allocator=a) for a in allocators for r in ratios]
    for b in budgets:
        pol.validate(b, causal=True)  # the model's own fit is checked once it is loaded
        b.allocator.validate(b, causal=True)
    return budgets


def _params_from_args(args) -> dict[str, str]:
    """``--param`` pairs, with ``--sinks``/``--seed`` as short forms; a name given twice is an error."""
    pairs = list(args.param)
    pairs += [(name, value) for name, value in (("sinks", args.sinks), ("seed", args.seed)) if value is not None]
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise UsageError(f"parameter {name} is given twice")
        params[name] = value
    return params


def _read_text(args) -> str:
    if args.text is not None:
        return args.text
    if args.text_file is None:
        raise UsageError("give the text with --text or --text-file")
    try:
        return args.text_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"text file not found: {args.text_file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {args.text_file}: {exc}") from None


def _progress(message: str) -> None:
    """Progress goes to stderr (never into the JSON on stdout)."""
    print(message, file=sys.stderr, flush=True)


def _quiet_libraries() -> None:
    """transformers' own progress bars would break the one-line-error contract off a terminal."""
    if not sys.stderr.isatty():
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()


def _table(result: dict) -> str:
    head = f"{'budget':<22} {'density':>8} {'KL':>9} {'top1':>7} {'ppl':>10} {'mass':>7} {'attn GF':>9} " \
           f"{'total GF':>10} {'KV MB':>8} {'sec':>7}"
    lines = [f"{result['model']}: {result['n_tokens']} tokens ({result['weights']})", head]
    for row in result["rows"]:
        q, c = row["quality"], row["compute"]
        def fmt(v, spec):
            return format(v, spec) if v is not None else "-".rjust(len(format(0.0, spec)))

        kv_mb = None if c["kv_bytes"] is None else c["kv_bytes"] / 2**20
        lines.append(" ".join([f"{row_label(row):<22}", f"{row['density']:>8.3f}", fmt(q["kl"], "9.4f"),
                               fmt(q["top1"], "7.3f"), fmt(q["ppl"], "10.2f"), f"{q['mass_kept']:>7.3f}",
                               f"{c['attn_flops'] / 1e9:>9.3f}", f"{c['total_flops'] / 1e9:>10.2f}",
                               fmt(kv_mb, "8.2f"), f"{c['seconds']:>7.2f}"]))
    if result.get("truncated_from"):
        lines.append(f"(text truncated from {result['truncated_from']} to {result['n_tokens']} tokens)")
    lines.append("FLOPs and KV MB are counted from formulas; sec is measured wall time of a masked simulation.")
    return "\n".join(lines)


def _sweep(args) -> int:
    text = _read_text(args)
    if not text.strip():
        raise TextError("the text is empty: give some text to analyse")
    allocators = allocators_from_args(args.allocator, args.allocator_param)
    budgets = budgets_from_args(args.policy, args.keys, args.budget, _params_from_args(args), allocators)
    from .measure.passes import encode_for, sweep, validate_budgets
    from .models import load_model

    _quiet_libraries()
    if sys.stderr.isatty():  # on a terminal a person waits ~30 s on a first start: say why
        print(f"loading model {args.model} ...", file=sys.stderr, flush=True)
    lm = load_model(args.model)
    validate_budgets(budgets, lm.causal)
    encode_for(lm, text, args.max_tokens)  # a text the model cannot use fails here, before any progress line
    # Everything that could be bad input has been checked: from here on progress goes to stderr.
    _progress(f"model {lm.name} loaded in {lm.load_seconds:.1f} s: {lm.weights}")

    def progress(done: int, total: int) -> None:
        _progress(f"sweep: {done}/{total} budgets")

    result = sweep(lm, text, budgets, max_tokens=args.max_tokens, batch_size=args.batch_size, progress=progress)
    if result["truncated_from"]:
        print(f"attnviz: warning: text truncated from {result['truncated_from']} to {result['n_tokens']} tokens "
              f"(cap {min(args.max_tokens, lm.max_positions)})", file=sys.stderr)
    print(json.dumps(result) if args.json else _table(result))
    return 0


def _press_table(result: dict) -> str:
    lines = [f"{result['model']}: {result['n_tokens']} tokens, context {result['context']} ({result['weights']})",
             f"{'press':<20} {'ratio':>6} {'kept':>8} {'KL':>9} {'top1':>7} {'ppl':>9} {'ppl_full':>9} {'KV MB':>8}"]
    for row in result["rows"]:
        q, c = row["quality"], row["compute"]
        lines.append(f"{row['press']:<20} {row['compression_ratio']:>6.2f} {row['kept']:>8.1f} {q['kl']:>9.4f} "
                     f"{q['top1']:>7.3f} {q['ppl']:>9.2f} {q['ppl_full']:>9.2f} {c['kv_bytes'] / 2**20:>8.2f}")
    lines.append("kept and KV MB are counted; KL, top1 and ppl are measured over the continuation's predictions.")
    return "\n".join(lines)


def _press(args) -> int:
    text = _read_text(args)
    if not text.strip():
        raise TextError("the text is empty: give some text to analyse")
    press = PRESSES.from_text(args.press, dict(_params_list(args.param)))
    if not args.ratio:
        raise UsageError("give at least one --ratio R (the share of the context's cache removed)")
    press.validate(args.context)
    from .measure.passes import encode_for, reference_pass
    from .measure.press import check_context, press_pass
    from .models import load_model

    _quiet_libraries()
    lm = load_model(args.model)
    if not lm.causal:
        raise BudgetError(f"model {args.model} is an encoder: pressing a KV cache needs a causal model")
    encoded = encode_for(lm, text, args.max_tokens)
    check_context(args.context, encoded.n_tokens, [press])
    _progress(f"model {lm.name} loaded in {lm.load_seconds:.1f} s: {lm.weights}")
    ref = reference_pass(lm, encoded)
    rows = press_pass(lm, ref, args.context, [(press, r) for r in args.ratio],
                      progress=lambda done, total: _progress(f"press: {done}/{total} ratios"))
    result = {"model": lm.name, "weights": lm.weights, "n_tokens": encoded.n_tokens,
              "truncated_from": encoded.truncated_from, "context": args.context,
              "note": "kept and kv_bytes are counted; quality is measured over the predictions at positions "
                      "C-1 .. n-2; seconds is the measured wall time of a masked (simulated) continuation",
              "rows": [r.to_json(positions=args.positions) for r in rows]}
    print(json.dumps(result) if args.json else _press_table(result))
    return 0


def _params_list(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    seen = set()
    for name, _ in pairs:
        if name in seen:
            raise UsageError(f"parameter {name} is given twice")
        seen.add(name)
    return pairs


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 2 bad input or a model that cannot load)."""
    from .hosting import keep_writes_in_cache
    from .models import ModelLoadError

    keep_writes_in_cache()
    try:
        load_plugins()  # before the parser: a plug-in's policies are among its choices
        args = _parser().parse_args(argv)
        if args.command == "sweep":
            return _sweep(args)
        if args.command == "press":
            return _press(args)
        from .bench import run_bench

        return run_bench(tokens=args.tokens, repeat=args.repeat, as_json=args.json)
    except (UsageError, BudgetError, TextError, ModelLoadError, PluginError) as exc:
        print(f"attnviz: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2


def _one_line(message: str) -> str:
    """``message`` with every character that is not printable (line breaks among them) escaped, so the error
    stays one line whatever value it quotes."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
