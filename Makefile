# Every target creates and reuses .venv/ in the repo root; nothing else needs to be installed by hand.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-core bench-data bench-orchestration bench-results clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/h2ot campaign run search_spaces/demo.yaml

test: $(STAMP)
	bash .ci/services
	$(BIN)/ruff check .
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench: bench-core

bench-core: $(STAMP)
	$(BIN)/python -m benchmarks.core

clean:
	rm -rf $(VENV)
