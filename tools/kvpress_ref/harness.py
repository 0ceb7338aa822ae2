"""Reference side of issue #17: NVIDIA kvpress's own presses run on given token ids; what they keep, what it costs.

Runs only in the kvpress venv (``make kvpress-venv``: kvpress 0.5.5, transformers 5.2, torch 2.13 CPU), never in
the app's venv: importing kvpress wraps transformers' attention functions and ``with press(model):`` hooks the model.

Input (JSON), one text::

    {"ids": [...], "context": C, "runs": [{"press": "snapkv", "params": {"window_size": 16}, "ratio": 0.5}, ...],
     "model": "<folder of a transformers save_pretrained model>"}            # "model" optional, see --model

or several: ``{"model": ..., "texts": [{"name": ..., "ids": ..., "context": ..., "runs": ...}, ...]}``.

Output (JSON): ``{"runs": [...]}`` for one text, ``{"texts": [{"name", "n_tokens", "context", "runs"}]}`` for
several, plus ``"meta"`` (versions, weights, seconds).  Each run is ``{"press", "params" (every field of the
kvpress press, defaults included), "compression_ratio", "kept" (mean kept context positions per layer and KV
head), "kept_positions" ([layer][kv_head] -> sorted positions), "quality": {"kl", "top1", "ppl", "ppl_full"},
"continuation" ("one_pass" or "token_by_token_sdpa", see below), "causal" (with --causal-probe), "seconds"}``,
or ``{"press", "params", "compression_ratio", "error"}`` when kvpress refuses.

Protocol (issue #17): the context ``ids[:C]`` is read with ``with press(model): model.model(ctx, past_key_values=
DynamicCache())``; the continuation ``ids[C:n-1]`` is teacher-forced in one pass ``model(cont, past_key_values=
cache, position_ids=arange(C, n-1))``.  The same two passes without a press give the full reference.  Quality is
over the predictions made at positions ``C-1 .. n-2`` (targets ``ids[C:]``): the first comes from the context's
last hidden state, computed before any compression, so its KL is 0.

A cache whose layers keep different counts (PyramidKV) cannot take the one-pass continuation: transformers builds
one causal mask from layer 0's length.  Its continuation is then fed token by token (``"token_by_token_sdpa"``).
``--causal-probe`` checks each run: changing the last continuation input must move no earlier prediction.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import math
import os
import pathlib
import platform
import sys
import time
from typing import Any

import torch

PRESSES = ("streaming_llm", "snapkv", "tova", "knorm", "observed_attention", "expected_attention", "random",
           "pyramidkv", "adakv")
RANDOM_SEED = 0  # kvpress's RandomPress defaults to seed=None (a fresh draw); the reference needs a fixed one


def press_classes() -> dict[str, Any]:
    """Our press names -> kvpress classes (imported here: the import patches transformers)."""
    import kvpress

    return {
        "streaming_llm": kvpress.StreamingLLMPress,
        "snapkv": kvpress.SnapKVPress,
        "tova": kvpress.TOVAPress,
        "knorm": kvpress.KnormPress,
        "observed_attention": kvpress.ObservedAttentionPress,
        "expected_attention": kvpress.ExpectedAttentionPress,
        "random": kvpress.RandomPress,
        "pyramidkv": kvpress.PyramidKVPress,
        "adakv": kvpress.AdaKVPress,
    }


def make_press(name: str, params: dict, ratio: float) -> tuple[Any, dict]:
    """The kvpress press object and every one of its parameters (defaults included, ratio excluded).

    ``adakv`` takes ``scorer`` (one of the scorer presses, default ``snapkv``) and ``alpha_safeguard``; its other
    params go to the scorer.
    """
    classes = press_classes()
    if name not in classes:
        raise ValueError(f"unknown press {name!r}; one of: {', '.join(PRESSES)}")
    params = dict(params or {})
    if name == "adakv":
        scorer = params.pop("scorer", "snapkv")
        if scorer in ("adakv", "pyramidkv") or scorer not in classes:
            raise ValueError(f"adakv needs a scorer press, not {scorer!r}")
        alpha = params.pop("alpha_safeguard", 0.2)
        inner, inner_params = make_press(scorer, params, ratio)
        press = classes["adakv"](press=inner, alpha_safeguard=alpha)
        return press, {"scorer": scorer, "alpha_safeguard": alpha, **inner_params}
    if name == "random":
        params.setdefault("seed", RANDOM_SEED)
    fields = {f.name for f in dataclasses.fields(classes[name])}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise ValueError(f"{name} has no parameter(s) {', '.join(unknown)}; it has {', '.join(sorted(fields))}")
    press = classes[name](compression_ratio=ratio, **params)
    full = {f.name: getattr(press, f.name) for f in dataclasses.fields(press) if f.name != "compression_ratio"}
    return press, full


def find_model_folder() -> pathlib.Path:
    """attnviz's converted SmolLM2 folder: ``$ATTNVIZ_CACHE_DIR``/``$XDG_CACHE_HOME``/``~/.cache`` + attnviz/smollm2."""
    own = os.environ.get("ATTNVIZ_CACHE_DIR")
    xdg = os.environ.get("XDG_CACHE_HOME")
    if own:
        root = pathlib.Path(own).expanduser()
    elif xdg and os.path.isabs(xdg):
        root = pathlib.Path(xdg) / "attnviz"
    else:
        root = pathlib.Path.home() / ".cache" / "attnviz"
    markers = sorted(glob.glob(str(root / "smollm2" / "*" / "attnviz-cache.json")), key=os.path.getmtime)
    if not markers:
        raise SystemExit(f"no converted SmolLM2 under {root}/smollm2: run `python -m attnviz` once in the main venv")
    return pathlib.Path(markers[-1]).parent


def load_model(folder: pathlib.Path):
    """SmolLM2 in float32 with eager attention (the Done-when presses need the attention weights)."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    model = AutoModelForCausalLM.from_pretrained(str(folder), attn_implementation="eager", dtype=torch.float32)
    model.eval()
    return model


class Runner:
    """Runs presses on one text; keeps the full reference per attention implementation."""

    def __init__(self, model, ids: list[int], context: int, probe: bool = False):
        self.model = model
        self.probe = probe
        self.ids = torch.tensor([ids], dtype=torch.long)
        self.n = len(ids)
        self.C = int(context)
        if not 1 <= self.C < self.n:
            raise ValueError(f"context {self.C} must be in [1, {self.n - 1}] for a text of {self.n} tokens")
        self.targets = self.ids[0, self.C:]  # (n - C,)
        self._full: dict[str, dict] = {}

    def _attn(self) -> str:
        return self.model.config._attn_implementation

    def _read(self, press=None, last_input: int | None = None):
        """(logits (n-C, V), cache, cache_before) for the protocol's two passes, under ``press`` if given.

        ``last_input`` replaces the last continuation input token (the causality probe).
        """
        from transformers import DynamicCache

        ctx = self.ids[:, : self.C]
        cont = self.ids[:, self.C: self.n - 1].clone()
        if last_input is not None and cont.shape[1]:
            cont[0, -1] = last_input
        cache = DynamicCache()
        with torch.no_grad():
            if press is None:
                out = self.model.model(ctx, past_key_values=cache)
            else:
                with press(self.model):
                    out = self.model.model(ctx, past_key_values=cache)
            first = self.model.lm_head(out.last_hidden_state[:, -1:])  # position C-1, read before compression
            kv = [(layer.keys.clone(), layer.values.clone()) for layer in cache.layers]
            masked = [getattr(layer.self_attn, "masked_key_indices", None) for layer in self.model.model.layers]
            parts = [first[0]]
            pos = torch.arange(self.C, self.n - 1).unsqueeze(0)
            self.last_mode = "one_pass"
            if len({k.shape[2] for k, _ in kv}) > 1:
                # Layers of unequal length (PyramidKV): transformers sizes the causal mask from layer 0, so one
                # multi-token pass fails under eager (a shape error) and would see future tokens if the mask were
                # cut to each layer.  Token by token, as kvpress's pipeline decodes, a query may see every cached
                # key; sdpa then needs no mask at all, while eager still adds layer 0's and fails, hence sdpa.
                self.last_mode = "token_by_token_sdpa"
                previous = self._attn()
                self.model.set_attn_implementation("sdpa")
                try:
                    for i in range(cont.shape[1]):
                        out = self.model(cont[:, i:i + 1], past_key_values=cache, position_ids=pos[:, i:i + 1])
                        parts.append(out.logits[0])
                finally:
                    self.model.set_attn_implementation(previous)
            elif cont.shape[1]:
                parts.append(self.model(cont, past_key_values=cache, position_ids=pos).logits[0])
        return torch.cat(parts).float(), kv, masked

    def full(self) -> dict:
        """The full-cache reference (logits, log-probs, context keys) under the current attention implementation."""
        attn = self._attn()
        if attn not in self._full:
            logits, kv, _ = self._read()
            logp = torch.log_softmax(logits, -1)
            self._full[attn] = {"logp": logp, "kv": kv, "top1": logits.argmax(-1)}
        return self._full[attn]

    def quality(self, logits: torch.Tensor) -> dict:
        """KL(full || pressed) mean over positions (nats), top-1 agreement, perplexities of the targets."""
        full = self.full()
        logp = torch.log_softmax(logits, -1)
        kl = (full["logp"].exp() * (full["logp"] - logp)).sum(-1).clamp_min(0)
        idx = self.targets.unsqueeze(-1)
        nll = -logp.gather(-1, idx).squeeze(-1)
        nll_full = -full["logp"].gather(-1, idx).squeeze(-1)
        return {
            "kl": float(kl.mean()),
            "top1": float((logits.argmax(-1) == full["top1"]).float().mean()),
            "ppl": math.exp(float(nll.mean())),
            "ppl_full": math.exp(float(nll_full.mean())),
            "n_positions": int(kl.shape[0]),
        }

    def kept_positions(self, kv: list, masked: list) -> list[list[list[int]]]:
        """[layer][kv_head] -> sorted kept context positions.

        Physically pruned caches: each kept key is matched to the identical key of the uncompressed context cache.
        AdaKV prunes nothing physically: its kept positions are those not in the modules' ``masked_key_indices``.
        """
        full_kv = self.full()["kv"]
        result = []
        for layer, ((keys, _), (fkeys, _)) in enumerate(zip(kv, full_kv, strict=True)):
            heads = []
            mask = masked[layer]
            for h in range(keys.shape[1]):
                if mask is not None:
                    _, head_idx, seq_idx = mask
                    dropped = set(seq_idx[head_idx == h].tolist())
                    heads.append([p for p in range(keys.shape[2]) if p not in dropped])
                    continue
                same = (keys[0, h, :, None, :] == fkeys[0, h, None, :, :]).all(-1)  # (kept, C) bitwise equal
                if not bool((same.sum(-1) == 1).all()):
                    raise RuntimeError(f"layer {layer} head {h}: a kept key matches no single context key exactly")
                heads.append(sorted(same.float().argmax(-1).tolist()))
            result.append(heads)
        return result

    def run(self, name: str, params: dict, ratio: float) -> dict:
        """One press at one ratio (kvpress's compression_ratio: the share removed)."""
        row: dict[str, Any] = {"press": name, "params": params, "compression_ratio": ratio}
        t0 = time.perf_counter()
        try:
            press, row["params"] = make_press(name, params, ratio)
        except (ValueError, TypeError, AssertionError) as exc:
            row["error"] = f"bad press or parameters: {exc}"
            return row
        # kvpress's AdaKV refuses eager attention (its masking lives in the patched sdpa/flash functions).
        attn = "sdpa" if name == "adakv" else "eager"
        previous = self._attn()
        self.model.set_attn_implementation(attn)
        try:
            logits, kv, masked = self._read(press)
            positions = self.kept_positions(kv, masked)
            counts = [len(h) for layer in positions for h in layer]
            row["attn_implementation"] = attn
            row["kept"] = sum(counts) / len(counts)
            row["kept_min"], row["kept_max"] = min(counts), max(counts)
            row["kept_full"] = self.C
            row["kept_positions"] = positions
            row["continuation"] = self.last_mode
            row["quality"] = self.quality(logits)
            if self.probe:
                row["causal"] = self.causal_probe(press, logits)
        except AssertionError as exc:  # kvpress's own checks, e.g. a context not longer than window_size
            row["error"] = f"kvpress refused: {exc}"
        except (RuntimeError, ValueError) as exc:  # reported per run: the other runs still go ahead
            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        finally:
            for layer in self.model.model.layers:
                layer.self_attn.masked_key_indices = None  # AdaKV leaves these behind
            self.model.set_attn_implementation(previous)
        row["seconds"] = round(time.perf_counter() - t0, 3)
        return row

    def causal_probe(self, press, logits: torch.Tensor) -> bool:
        """True if changing the last continuation input leaves every earlier prediction unchanged."""
        if self.n - 1 - self.C < 2:
            return True
        last = int(self.ids[0, self.n - 2])
        other, _, _ = self._read(press, last_input=(last + 1) % self.model.config.vocab_size)
        return bool(torch.equal(other[:-1], logits[:-1]))


def run_text(model, text: dict, probe: bool = False) -> dict:
    """All runs of one text ``{"ids", "context", "runs"}``; ``probe`` adds the causality probe to each run."""
    runner = Runner(model, text["ids"], text["context"], probe)
    out: dict[str, Any] = {"n_tokens": runner.n, "context": runner.C}
    if "name" in text:
        out = {"name": text["name"], **out}
    full = runner.full()
    nll = -full["logp"].gather(-1, runner.targets.unsqueeze(-1)).squeeze(-1)
    out["ppl_full"] = math.exp(float(nll.mean()))
    check = text.get("check")
    if check:  # the main venv's attnviz log-probabilities of the same ids (single full forward)
        with torch.no_grad():
            logp = torch.log_softmax(model(runner.ids).logits[0, :-1].float(), -1)
        mine = logp.gather(-1, runner.ids[0, 1:].unsqueeze(-1)).squeeze(-1)
        theirs = torch.tensor(check["target_logprobs"])
        out["check_vs_main_venv"] = {
            "max_abs_diff_target_logprob": float((mine - theirs).abs().max()),
            "top1_equal": bool(torch.equal(logp.argmax(-1), torch.tensor(check["top1"]))),
            "main_venv_transformers": check.get("transformers"),
        }
        # the protocol's two-pass full reference against one forward over the whole text
        out["check_split_vs_single_pass"] = float((full["logp"] - logp[runner.C - 1:]).abs().max())
    rows = []
    for spec in text["runs"]:
        rows.append(runner.run(spec["press"], spec.get("params") or {}, float(spec["ratio"])))
        print(f"  {rows[-1]['press']} r={rows[-1]['compression_ratio']}: "
              f"{rows[-1].get('error') or rows[-1]['quality']}", file=sys.stderr, flush=True)
    out["runs"] = rows
    return out


def meta(folder: pathlib.Path, seconds: float) -> dict:
    """Versions and the weights used."""
    from importlib.metadata import version

    import transformers

    return {
        "kvpress": version("kvpress"),
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "weights": str(folder),
        "dtype": "float32",
        "seconds": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("input", type=pathlib.Path, help="JSON with ids, context and runs (see the module doc)")
    parser.add_argument("--out", type=pathlib.Path, help="write the JSON here (default: stdout)")
    parser.add_argument("--model", type=pathlib.Path, help="transformers model folder (default: the input's "
                        "'model', else attnviz's converted SmolLM2 in its cache)")
    parser.add_argument("--causal-probe", action="store_true", help="check each pressed continuation is causal "
                        "(one more pass per run)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    spec = json.loads(args.input.read_text(encoding="utf-8"))
    folder = args.model or (pathlib.Path(spec["model"]) if spec.get("model") else find_model_folder())
    model = load_model(folder)
    if "texts" in spec:
        result: dict[str, Any] = {"texts": []}
        for text in spec["texts"]:
            print(f"{text.get('name', '?')}: {len(text['ids'])} tokens, context {text['context']}", file=sys.stderr)
            result["texts"].append(run_text(model, text, args.causal_probe))
    else:
        result = run_text(model, spec, args.causal_probe)
    result["meta"] = meta(folder, time.perf_counter() - start)
    text = json.dumps(result, indent=None, separators=(",", ":"))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
