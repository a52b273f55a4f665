# Every target creates and reuses .venv/ in the repo root; nothing else needs to be installed by hand.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-core bench-data bench-engine bench-orchestration bench-results claim clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev,mocap]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/h2ot campaign run search_spaces/demo.yaml

test: $(STAMP)
	bash .ci/services
	$(BIN)/ruff check .
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

# Benchmarks print medians and side-by-side ratios; none of them is a test.
bench: bench-core bench-data bench-engine bench-results bench-orchestration

bench-core: $(STAMP)
	$(BIN)/python -m benchmarks.core

bench-data: $(STAMP)
	$(BIN)/python -m benchmarks.data_loader

bench-engine: $(STAMP)
	$(BIN)/python -m benchmarks.engine

bench-results: $(STAMP)
	$(BIN)/python -m benchmarks.results_bench

bench-orchestration: $(STAMP)
	$(BIN)/python -m benchmarks.orchestration

# The paper's claim on a CPU budget (a few minutes): unpruned vs HoT vs H2OT vs TPS+TRI on synthetic data.
claim: $(STAMP)
	$(BIN)/python -m benchmarks.claim

clean:
	rm -rf $(VENV)
