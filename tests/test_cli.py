"""The ``python -m attnviz sweep`` contract: one JSON object on stdout, progress on stderr,
bad input -> exit status 2 and a single line on stderr.

Most cases run in-process through :func:`attnviz.cli.main` with the session's
model patched in; two run as real subprocesses to prove exit codes and clean stdout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import attnviz.models
from attnviz.cli import main

ROOT = Path(__file__).resolve().parents[1]
TEXT = ("The lighthouse keeper climbed the spiral stairs every evening at dusk. "
        "He trimmed the wick and polished the lens.")
L, H, HKV, D = 30, 9, 3, 64
KV_PER_KEY = HKV * L * 2 * D * 4

QUALITY = {"kl", "top1", "ppl", "ppl_full", "mass_kept"}
COMPUTE = {"attn_pairs", "attn_pairs_full", "attn_flops", "attn_flops_full", "total_flops", "total_flops_full",
           "kv_bytes", "kv_bytes_full", "seconds"}


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture
def use_model(monkeypatch, smollm2, minilm):
    """Make the CLI's ``load_model`` return the session's already loaded models."""
    loaded = {"smollm2": smollm2, "minilm": minilm}

    def fake_load(name="smollm2", attn_implementation="attnviz"):
        return loaded[name]

    monkeypatch.setattr(attnviz.models, "load_model", fake_load)
    return loaded


def _n_tokens(lm, text):
    return len(lm.tokenizer(text)["input_ids"])


def _single_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    assert "Traceback" not in err and "usage:" not in err
    return lines[0]


# --------------------------------------------------------------------------- successful runs


def test_json_rows_keys_first_in_order_given(use_model, text_file, capsys, smollm2):
    rc = main(["sweep", "--model", "smollm2", "--text-file", str(text_file), "--policy", "window",
               "--budget", "0.5", "--keys", "8", "--keys", "3", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0
    result = json.loads(out)  # the whole of stdout is one JSON object
    assert isinstance(result, dict)
    assert err.strip(), "progress belongs on stderr"
    assert not any(line.startswith("{") for line in err.splitlines())
    n = _n_tokens(smollm2, TEXT)
    assert result["model"] == "smollm2"
    assert result["n_tokens"] == n
    assert result["truncated_from"] is None
    rows = result["rows"]
    assert [(r["policy"], r["keys"], r["budget"]) for r in rows] == [("window", 8, None), ("window", 3, None),
                                                                      ("window", None, 0.5)]
    for row in rows:
        assert set(row["quality"]) >= QUALITY
        assert set(row["compute"]) >= COMPUTE
        assert row["compute"]["attn_pairs_full"] == L * H * n * (n + 1) // 2
        assert row["compute"]["kv_bytes_full"] == n * KV_PER_KEY
    for row, k in zip(rows[:2], (8, 3), strict=True):
        kept = L * H * sum(min(k, i + 1) for i in range(n))
        assert row["compute"]["attn_pairs"] == kept
        assert row["density"] == pytest.approx(kept / (L * H * n * (n + 1) // 2), rel=1e-12)
        assert row["compute"]["kv_bytes"] == k * KV_PER_KEY
    assert rows[0]["quality"]["kl"] < rows[1]["quality"]["kl"]  # fewer keys, further from full


def test_allocators_times_sizes_one_row_each(use_model, text_file, capsys, smollm2):
    rc = main(["sweep", "--text-file", str(text_file), "--policy", "topk", "--keys", "4", "--keys", "8",
               "--allocator", "uniform", "--allocator", "pyramid", "--allocator", "price",
               "--allocator-param", "floor=0.5", "--json"])
    out, _ = capsys.readouterr()
    assert rc == 0
    rows = json.loads(out)["rows"]
    assert [(r["allocator"], r["keys"]) for r in rows] == [("uniform", 4), ("uniform", 8), ("pyramid", 4),
                                                           ("pyramid", 8), ("price", 4), ("price", 8)]
    assert rows[2]["allocator_params"] == {"slope": 0.5}  # floor is price's alone
    assert rows[4]["allocator_params"] == {"tau": 0.0, "floor": 0.5}
    for row in rows:
        alloc = row["allocation"]
        assert len(alloc["layers"]) == L and len(alloc["heads"]) == L and len(alloc["heads"][0]) == H
        assert sum(alloc["layers"]) / L == pytest.approx(row["density"], abs=1e-5)  # rounded to 6 places
    assert sum(rows[3]["allocation"]["layer_keys"]) == L * 8
    assert rows[5]["allocation"]["tau"] > 0
    assert rows[0]["allocation"]["heads"][0] == rows[0]["allocation"]["heads"][-1]  # uniform is flat
    n = _n_tokens(smollm2, TEXT)
    assert rows[1]["compute"]["attn_pairs"] == L * H * sum(min(8, i + 1) for i in range(n))


def test_help_lists_allocators_and_their_parameters(capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    out = capsys.readouterr().out
    for words in ("allocators", "pyramid", "--allocator-param slope=VALUE", "--allocator-param floor=VALUE",
                  "marginal", "duo"):
        assert words in out


def test_full_policy_json(use_model, text_file, capsys):
    rc = main(["sweep", "--text-file", str(text_file), "--policy", "full", "--json"])
    out, _ = capsys.readouterr()
    assert rc == 0
    (row,) = json.loads(out)["rows"]
    assert row["policy"] == "full" and row["density"] == 1.0
    assert row["quality"]["kl"] < 1e-9 and row["quality"]["top1"] == 1.0
    assert row["quality"]["ppl"] == pytest.approx(row["quality"]["ppl_full"], rel=1e-12)


def test_encoder_json_has_null_causal_fields(use_model, text_file, capsys):
    rc = main(["sweep", "--model", "minilm", "--text-file", str(text_file), "--policy", "topk", "--keys", "4",
               "--json"])
    out, _ = capsys.readouterr()
    assert rc == 0
    (row,) = json.loads(out)["rows"]
    q = row["quality"]
    assert q["kl"] is None and q["top1"] is None and q["ppl"] is None and q["ppl_full"] is None
    assert 0 < q["cos_embedding"] <= 1.0 + 1e-6 and 0 < q["cos_tokens"] <= 1.0 + 1e-6
    assert row["compute"]["kv_bytes"] is None


def test_table_without_json(use_model, text_file, capsys):
    rc = main(["sweep", "--text-file", str(text_file), "--policy", "sink_window", "--keys", "8", "--sinks", "2",
               "--budget", "0.5"])
    out, err = capsys.readouterr()
    assert rc == 0
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)
    assert "density" in out
    lines = out.splitlines()
    assert any(line.startswith("sink_window K=8") for line in lines)
    assert any(line.startswith("sink_window R=0.5") for line in lines)
    assert "sweep" in err  # progress on stderr


def test_table_columns_stay_separated_for_large_values():
    """Readable table: a tiny budget easily gives ppl > 100000 (random K=1 on a 21-token text gives ~163043);
    every number must still be its own whitespace-separated column."""
    from attnviz.cli import _table

    row = {"policy": "random", "keys": 1, "budget": None, "density": 0.091,
           "quality": {"kl": 7.1142, "top1": 0.1, "ppl": 163043.45, "ppl_full": 30.9, "mass_kept": 0.173},
           "compute": {"attn_flops": 1.2e6, "total_flops": 5.65e9, "kv_bytes": 967680, "seconds": 1.47}}
    result = {"model": "smollm2", "weights": "w", "n_tokens": 21, "truncated_from": None, "rows": [row]}
    line = next(x for x in _table(result).splitlines() if x.startswith("random K=1 seed=0"))
    fields = line.split()[3:]  # after "random" "K=1" "seed=0": density KL top1 ppl mass attnGF totalGF KVMB sec
    assert len(fields) == 9, line
    assert float(fields[2]) == pytest.approx(0.1) and float(fields[3]) == pytest.approx(163043.45)


def test_truncation_warns_once_on_stderr(use_model, text_file, capsys, smollm2):
    rc = main(["sweep", "--text-file", str(text_file), "--policy", "topk", "--keys", "4", "--max-tokens", "20",
               "--json"])
    out, err = capsys.readouterr()
    assert rc == 0
    result = json.loads(out)
    assert result["n_tokens"] == 20
    assert result["truncated_from"] == _n_tokens(smollm2, TEXT)
    warnings = [line for line in err.splitlines() if "truncat" in line]
    assert len(warnings) == 1
    assert str(result["truncated_from"]) in warnings[0]
    assert result["rows"][0]["compute"]["attn_pairs_full"] == L * H * 20 * 21 // 2


# --------------------------------------------------------------------------- bad input: status 2, one line


BAD = {
    "missing text": (["--policy", "topk", "--keys", "4"], "text"),
    "empty text": (["--text", "", "--policy", "topk", "--keys", "4"], "empty"),
    "whitespace text": (["--text", "  \n\t ", "--policy", "topk", "--keys", "4"], "empty"),
    "unknown policy": (["--text", TEXT, "--policy", "nope", "--keys", "4"], "nope"),
    "budget 0": (["--text", TEXT, "--policy", "topk", "--budget", "0"], "budget"),
    "budget 1.5": (["--text", TEXT, "--policy", "topk", "--budget", "1.5"], "budget"),
    "budget nan": (["--text", TEXT, "--policy", "topk", "--budget", "nan"], "budget"),
    "budget -1": (["--text", TEXT, "--policy", "topk", "--budget", "-1"], "budget"),
    "budget word": (["--text", TEXT, "--policy", "topk", "--budget", "half"], "budget"),
    "keys 0": (["--text", TEXT, "--policy", "topk", "--keys", "0"], "keys"),
    "keys -3": (["--text", TEXT, "--policy", "window", "--keys", "-3"], "keys"),
    "keys with topp": (["--text", TEXT, "--policy", "topp", "--keys", "4"], "topp"),
    "sink_window K == S": (["--text", TEXT, "--policy", "sink_window", "--keys", "4", "--sinks", "4"], "sink_window"),
    "sink_window K < S": (["--text", TEXT, "--policy", "sink_window", "--keys", "2"], "sink_window"),
    "no size": (["--text", TEXT, "--policy", "topk"], "topk"),
    "text and file": (["--text", TEXT, "--text-file", "x.txt", "--policy", "topk", "--keys", "4"], "text"),
    "unknown allocator": (["--text", TEXT, "--policy", "topk", "--keys", "4", "--allocator", "nope"], "pyramid"),
    "allocator param no one has": (["--text", TEXT, "--policy", "topk", "--keys", "4", "--allocator", "pyramid",
                                    "--allocator-param", "floor=0.5"], "floor"),
    "allocator param out of range": (["--text", TEXT, "--policy", "topk", "--keys", "4", "--allocator", "pyramid",
                                      "--allocator-param", "slope=2"], "slope"),
    "allocator param twice": (["--text", TEXT, "--policy", "topk", "--keys", "4", "--allocator", "price",
                               "--allocator-param", "floor=0.5", "--allocator-param", "floor=0.1"], "twice"),
    "allocator with h2o": (["--text", TEXT, "--policy", "h2o", "--keys", "4", "--allocator", "pyramid"], "h2o"),
    "allocator with topp": (["--text", TEXT, "--policy", "topp", "--budget", "0.9", "--allocator", "heads"], "topp"),
    "allocator with a ratio": (["--text", TEXT, "--policy", "topk", "--budget", "0.5", "--allocator", "price"],
                               "key count"),
    "duo with topk": (["--text", TEXT, "--policy", "topk", "--keys", "8", "--allocator", "duo"], "sink_window"),
}


@pytest.mark.parametrize("args,needle", BAD.values(), ids=BAD.keys())
def test_bad_input_exits_2_with_one_line(use_model, capsys, args, needle):
    rc = main(["sweep", "--json", *args])
    out, err = capsys.readouterr()
    assert rc == 2
    assert out == ""
    line = _single_error_line(err)
    assert needle in line.lower()


def test_missing_text_file(use_model, tmp_path, capsys):
    missing = tmp_path / "nowhere.txt"
    rc = main(["sweep", "--text-file", str(missing), "--policy", "topk", "--keys", "4", "--json"])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert "nowhere.txt" in _single_error_line(err)


def test_empty_text_file(use_model, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n   \n", encoding="utf-8")
    rc = main(["sweep", "--text-file", str(empty), "--policy", "topk", "--keys", "4", "--json"])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert "empty" in _single_error_line(err)


@pytest.mark.parametrize("args,needle", [
    (["--model", "minilm", "--text", TEXT, "--policy", "h2o", "--keys", "4"], "h2o"),
    (["--model", "smollm2", "--text", "hi", "--policy", "topk", "--keys", "4"], "token"),  # 1 token: no prediction
], ids=["h2o on minilm", "single-token text"])
def test_bad_input_found_after_loading_exits_2_with_one_line(use_model, capsys, args, needle):
    rc = main(["sweep", "--json", *args])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert needle in _single_error_line(err)


def test_undecodable_text_file(use_model, tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00abc\xc3")
    rc = main(["sweep", "--text-file", str(bad), "--policy", "topk", "--keys", "4", "--json"])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert "bad.txt" in _single_error_line(err)


def test_unknown_model_offline_exits_2_with_one_line(text_file, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rc = main(["sweep", "--model", "no-such/model-xyz", "--text-file", str(text_file), "--policy", "topk",
               "--keys", "4", "--json"])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert "no-such/model-xyz" in _single_error_line(err)


# --------------------------------------------------------------------------- real subprocesses


def _run(args):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, "-m", "attnviz", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)


@pytest.mark.model  # the subprocess loads SmolLM2 itself
def test_subprocess_json_stdout_is_clean(smollm2, text_file):
    # (the smollm2 fixture makes sure the converted model is in the disk cache first)
    proc = _run(["sweep", "--model", "smollm2", "--text-file", str(text_file), "--policy", "sink_window",
                 "--keys", "8", "--sinks", "2", "--json"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1  # one JSON object, one line
    result = json.loads(proc.stdout)
    assert result["model"] == "smollm2"
    assert result["n_tokens"] == _n_tokens(smollm2, TEXT)
    (row,) = result["rows"]
    assert (row["policy"], row["keys"], row["sinks"]) == ("sink_window", 8, 2)
    assert "loaded in" in proc.stderr and "sweep: 1/1" in proc.stderr  # progress on stderr


def test_subprocess_bad_budget_exit_2():
    proc = _run(["sweep", "--text", TEXT, "--policy", "topk", "--budget", "1.5", "--json"])
    assert proc.returncode == 2
    assert proc.stdout == ""
    line = _single_error_line(proc.stderr)
    assert line.startswith("attnviz: error:") and "1.5" in line


# --------------------------------------------------------------------------- python -m attnviz press

LONG = (TEXT + " ") * 4


def test_press_json_rows(use_model, capsys, smollm2):
    rc = main(["press", "--text", LONG, "--context", "40", "--press", "snapkv", "--param", "window_size=16",
               "--ratio", "0.5", "--ratio", "0.75", "--positions", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0 and err.strip()
    result = json.loads(out)
    assert set(result) >= {"model", "weights", "n_tokens", "context", "rows"} and result["context"] == 40
    first, second = result["rows"]
    assert set(first) >= {"press", "compression_ratio", "params", "kept", "kept_full", "quality", "compute"}
    assert first["params"] == {"window_size": 16, "kernel_size": 5}
    assert (first["kept"], second["kept"], first["kept_full"]) == (20, 10, 40)
    assert set(first["quality"]) == {"kl", "top1", "ppl", "ppl_full"}
    assert set(first["compute"]) == {"kv_bytes", "kv_bytes_full", "seconds"}
    assert 0 < first["quality"]["kl"] < second["quality"]["kl"]
    assert len(first["kept_positions"]) == L and all(len(h) == 20 for layer in first["kept_positions"] for h in layer)
    n = result["n_tokens"]
    assert first["compute"]["kv_bytes"] == (20 + n - 40) * KV_PER_KEY


def test_press_help_lists_presses_with_their_kvpress_classes(capsys):
    with pytest.raises(SystemExit):
        main(["press", "--help"])
    out = capsys.readouterr().out
    for words in ("streaming_llm", "SnapKVPress", "expected_attention", "--param window_size=VALUE", "adakv"):
        assert words in out


PRESS_BAD = {
    "unknown press": (["--press", "nope", "--context", "10", "--ratio", "0.5"], "nope"),
    "unknown parameter": (["--press", "snapkv", "--context", "70", "--ratio", "0.5", "--param", "x=1"], "x"),
    "ratio 1": (["--press", "knorm", "--context", "10", "--ratio", "1"], "[0, 1)"),
    "ratio -0.1": (["--press", "knorm", "--context", "10", "--ratio", "-0.1"], "[0, 1)"),
    "no ratio": (["--press", "knorm", "--context", "10"], "--ratio"),
    "context too long": (["--press", "knorm", "--context", "5000", "--ratio", "0.5"], "shorter than the text"),
    "context too short for the window": (["--press", "snapkv", "--context", "30", "--ratio", "0.5"],
                                         "window_size=64"),
    "context too short for the sinks": (["--press", "streaming_llm", "--context", "3", "--ratio", "0.5"],
                                        "n_sink=4"),
    "encoder": (["--model", "minilm", "--press", "knorm", "--context", "10", "--ratio", "0.5"], "causal"),
}


@pytest.mark.parametrize("args,needle", PRESS_BAD.values(), ids=PRESS_BAD.keys())
def test_press_bad_input_exits_2_with_one_line(use_model, capsys, args, needle):
    rc = main(["press", "--text", LONG, "--json", *args])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert needle in _single_error_line(err)


@pytest.mark.parametrize("value", ["1\n2", "x\r", "\x0b", "a\u2028b", "\x1c", "\x85"])
def test_an_error_quoting_a_line_break_stays_one_line(capsys, value):
    """Found by tests/fuzz: a bad value with a line break (or any character str.splitlines breaks at) was
    quoted as is, so the one-line error took two."""
    for argv in (["sweep", "--text", "a", "--policy", "topk", "--keys", value],
                 ["sweep", "--text", "a", "--policy", "sink_window", "--keys", "8", "--param", f"sinks={value}"],
                 ["press", "--text", "a", "--press", "knorm", "--context", "1", "--ratio", value]):
        assert main(argv) == 2
        out, err = capsys.readouterr()
        assert not out
        line = _single_error_line(err)
        assert line.startswith("attnviz: error: ") and err.endswith("\n")


def test_a_token_cap_of_one_on_a_causal_model_is_one_line(use_model, capsys):
    """Found by tests/fuzz: ``--max-tokens 1`` on SmolLM2 ended in a ValueError traceback."""
    assert main(["sweep", "--text", TEXT, "--policy", "full", "--max-tokens", "1", "--json"]) == 2
    _, err = capsys.readouterr()
    assert "at least 2" in _single_error_line(err)
