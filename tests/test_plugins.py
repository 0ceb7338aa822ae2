"""The plug-in contract: a user's own policy, registered through ATTNVIZ_PLUGINS, works like a built-in one.

The plug-in is the README's example (tests/plugins/every_other_policy.py), imported as a user's module would be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from attnviz.budget import Budget, BudgetError
from attnviz.engine.run import BudgetRun
from attnviz.params import ParamError
from attnviz.plugins import PluginError, load_plugins
from attnviz.policies import POLICIES, Policy, get_policy, register

PLUGINS = Path(__file__).parent / "plugins"
ROOT = Path(__file__).resolve().parents[1]
TEXT = "The cat sat on the mat because it was tired, and then it slept for a long while."


def test_a_plugin_is_registered_with_its_parameters(every_other):
    assert "every_other" in POLICIES and list(POLICIES)[:7] == ["full", "topk", "topp", "window", "sink_window",
                                                              "h2o", "random"]
    (phase,) = every_other.parameters()
    assert (phase.name, phase.type, phase.default, phase.min, phase.max) == ("phase", int, 0, 0, 1)
    budget = Budget.of("every_other", keys=8, phase=1)
    assert budget.label == "every_other K=8 phase=1"
    assert budget.to_json()["params"] == {"phase": 1}
    assert Budget.from_json(budget.to_json()) == budget
    assert Budget("every_other", keys=8).policy.phase == 0  # a name alone means the defaults


def test_bad_parameters_are_one_line_errors(every_other):
    with pytest.raises(ParamError, match=r"^policy 'every_other': parameter phase must be an integer from 0 to 1, "
                                         r"got 2$"):
        get_policy("every_other", phase=2).validate(Budget("every_other", keys=4), True)
    with pytest.raises(BudgetError, match=r"^policy 'every_other' has no parameter 'nope' \(its parameters: phase\)$"):
        get_policy("every_other", nope=1)
    with pytest.raises(ParamError, match="must be an integer from 0 to 1, got 'x'"):
        POLICIES.from_text("every_other", {"phase": "x"})


def test_the_engine_gives_an_empty_row_its_best_key(every_other):
    """phase=1 keeps odd keys only: row 0 sees key 0 alone, so the rule leaves it empty and the engine gives it
    key 0 (counted); every other row keeps exactly its odd allowed keys."""
    n, hq = 6, 2
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, hq, n, 4, generator=g) for _ in range(3))
    allowed = torch.ones(n, n, dtype=torch.bool).tril().view(1, 1, n, n)
    run = BudgetRun([Budget.of("every_other", keys=n, phase=1)], causal=True, capture="all")
    out, weights = run.attend(0, q, k, v, allowed, 0.5)
    keep = run.keep_masks[0][0, 0]
    odd = torch.arange(n) % 2 == 1
    assert keep[0].tolist() == [True] + [False] * (n - 1)
    for i in range(1, n):
        assert keep[i].tolist() == (odd & (torch.arange(n) <= i)).tolist()
    assert torch.isfinite(out).all() and torch.allclose(weights.sum(-1), torch.ones(1, hq, n))
    assert run.stats[0].kept_pairs == hq * int(keep.sum())


def test_a_plugin_must_be_a_frozen_dataclass_with_a_name():
    class NotADataclass(Policy):
        name = "nodc"
        summary = "x"

    with pytest.raises(PluginError, match="@dataclass"):
        register(NotADataclass)

    @dataclass(frozen=True)
    class BadType(Policy):
        name = "badtype"
        summary = "x"
        weights: list = field(default_factory=list)

    with pytest.raises(PluginError, match="must be a bool, int, float or str"):
        register(BadType)

    @dataclass(frozen=True)
    class Taken(Policy):
        name = "topk"
        summary = "x"

    with pytest.raises(PluginError, match="already taken"):
        register(Taken)
    assert "nodc" not in POLICIES and "badtype" not in POLICIES and POLICIES["topk"].__name__ == "TopK"


def test_a_module_that_fails_to_import_is_one_line(monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGINS))
    with pytest.raises(PluginError, match=r"^cannot import plug-in module 'broken_policy' \(from ATTNVIZ_PLUGINS\): "
                                         r"ModuleNotFoundError: No module named 'a_module_that_does_not_exist'$"):
        load_plugins("broken_policy")


def test_a_plugin_gives_the_same_rows_packed_and_batched(smollm2, every_other):
    from attnviz.measure import budget_pass, encode_for, reference_pass

    ref = reference_pass(smollm2, encode_for(smollm2, TEXT))
    budgets = [Budget.of("every_other", keys=8, phase=p) for p in (0, 1)]
    packed = budget_pass(smollm2, ref, budgets, pack=True)
    batched = budget_pass(smollm2, ref, budgets, pack=False)
    for a, b in zip(packed, batched, strict=True):
        assert a.stats.kept_pairs == b.stats.kept_pairs and a.density == b.density
        assert a.quality.kl == pytest.approx(b.quality.kl, abs=1e-4)
        assert a.quality.kl > 0.01  # dropping half the keys changes the model
    assert packed[0].density != packed[1].density


# --------------------------------------------------------------------------- the command line, as a user runs it


def _cli(*args: str, plugins: str = "every_other_policy") -> subprocess.CompletedProcess:
    env = {**os.environ, "ATTNVIZ_PLUGINS": plugins, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(PLUGINS), str(ROOT)])}
    return subprocess.run([sys.executable, "-m", "attnviz", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600)


@pytest.mark.model  # the subprocess loads SmolLM2
def test_the_cli_runs_a_plugin_with_its_parameter(tmp_path):
    text_file = tmp_path / "text.txt"
    text_file.write_text(TEXT, encoding="utf-8")
    done = _cli("sweep", "--model", "smollm2", "--text-file", str(text_file), "--policy", "every_other",
                "--keys", "8", "--param", "phase=1", "--json")
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(done.stdout)["rows"]
    assert (row["policy"], row["keys"], row["params"]) == ("every_other", 8, {"phase": 1})
    assert 0 < row["density"] < 1 and row["quality"]["kl"] > 0


@pytest.mark.parametrize("args,message", [
    (["--param", "phase=2"], "attnviz: error: policy 'every_other': parameter phase must be an integer from 0 "
                             "to 1, got 2"),
    (["--param", "nope=1"], "attnviz: error: policy 'every_other' has no parameter 'nope' (its parameters: phase)"),
    (["--param", "phase"], "attnviz: error: argument --param: expected NAME=VALUE, got 'phase'"),
    (["--sinks", "2"], "attnviz: error: policy 'every_other' has no parameter 'sinks' (its parameters: phase)"),
])
def test_bad_plugin_parameters_exit_2_with_one_line(args, message):
    done = _cli("sweep", "--text", TEXT, "--policy", "every_other", "--keys", "8", *args)
    assert done.returncode == 2
    assert done.stderr.strip() == message and not done.stdout


def test_a_plugin_module_that_fails_exits_2_with_one_line():
    done = _cli("sweep", "--text", TEXT, "--policy", "topk", "--keys", "8", plugins="broken_policy")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["attnviz: error: cannot import plug-in module 'broken_policy' (from "
                                                "ATTNVIZ_PLUGINS): ModuleNotFoundError: No module named "
                                                "'a_module_that_does_not_exist'"]


def test_help_lists_the_plugin_and_its_parameter():
    done = _cli("sweep", "--help")
    assert done.returncode == 0
    assert "every_other" in done.stdout and "Keeps every other key." in done.stdout
    assert "--param phase=VALUE" in done.stdout


# --------------------------------------------------------------------------- an allocator plug-in


@pytest.mark.model  # the subprocess loads SmolLM2
def test_the_cli_runs_an_allocator_plugin_with_its_parameter(tmp_path):
    text_file = tmp_path / "text.txt"
    text_file.write_text(TEXT, encoding="utf-8")
    done = _cli("sweep", "--model", "smollm2", "--text-file", str(text_file), "--policy", "topk", "--keys", "4",
                "--allocator", "top_heavy", "--allocator", "uniform", "--allocator-param", "share=0.9", "--json",
                plugins="top_heavy_allocator")
    assert done.returncode == 0, done.stderr
    heavy, uniform = json.loads(done.stdout)["rows"]
    assert (heavy["allocator"], heavy["allocator_params"]) == ("top_heavy", {"share": 0.9})
    keys = heavy["allocation"]["layer_keys"]
    assert sum(keys) == 30 * 4 and keys[-1] > keys[0]
    assert heavy["allocation"]["layers"][-1] > heavy["allocation"]["layers"][0]
    assert heavy["quality"]["kl"] != uniform["quality"]["kl"]


def test_help_and_errors_know_an_allocator_plugin():
    done = _cli("sweep", "--help", plugins="top_heavy_allocator")
    assert "top_heavy" in done.stdout and "--allocator-param share=VALUE" in done.stdout
    done = _cli("sweep", "--text", TEXT, "--policy", "topk", "--keys", "8", "--allocator", "top_heavy",
                "--allocator-param", "share=1", plugins="top_heavy_allocator")
    assert done.returncode == 2
    assert done.stderr.strip() == ("attnviz: error: allocator 'top_heavy': parameter share must be a number from "
                                   "0.05 to 0.95, got 1.0")


def test_the_readme_examples_are_the_tested_plugins():
    """The README's two plug-in examples are these files' code, word for word (a stale example would mislead)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in ("every_other_policy.py", "top_heavy_allocator.py"):
        code = (PLUGINS / name).read_text(encoding="utf-8").split('"""', 2)[2].strip()
        body = code[code.index("@register"):]
        assert body in readme, name


@pytest.mark.model  # the subprocess loads SmolLM2
def test_a_press_plugin_runs_like_a_builtin_one():
    done = _cli("press", "--text", (TEXT + " ") * 3, "--context", "30", "--press", "oldest", "--ratio", "0.5",
                "--positions", "--json", plugins="oldest_press")
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(done.stdout)["rows"]
    assert row["press"] == "oldest" and row["kept"] == 15
    assert all(h == list(range(15)) for layer in row["kept_positions"] for h in layer)
    assert "oldest" in _cli("press", "--help", plugins="oldest_press").stdout
