# Every target creates and reuses .venv/ in the repo root; nothing else needs to be installed by hand.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# where the commands write (the leaderboard, MLflow, checkpoints, the demo's report): H2OT_RUNS_DIR or results/runs
RUNS_DIR := $(abspath $(or $(H2OT_RUNS_DIR),results/runs))
DEMO_REPORT := $(RUNS_DIR)/demo_report
MLFLOW_STORE := $(or $(MLFLOW_TRACKING_URI),sqlite:///$(RUNS_DIR)/mlflow.db)

.PHONY: demo test test-fast lint serve bench-web screenshots bench bench-video bench-core bench-data bench-engine bench-orchestration bench-results bench-search bench-precision bench-official bench-train bench-attention bench-gpu bench-estimate claim readme clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev,mocap]'
	touch $(STAMP)

# The demo campaign, then its report (written even when a trial failed; the exit code is the campaign's).
demo: $(STAMP)
	@$(BIN)/h2ot campaign run search_spaces/demo.yaml; rc=$$?; \
	$(BIN)/h2ot report demo --out $(DEMO_REPORT) >/dev/null || exit 1; \
	echo ""; \
	echo "Report: $(DEMO_REPORT)/demo.md (its tables in tables/, plots in figures/)"; \
	echo "Next:"; \
	echo "  $(BIN)/h2ot leaderboard --campaign demo"; \
	echo "  $(BIN)/h2ot tables build demo --out paper_tables/"; \
	echo "  $(BIN)/h2ot plots --campaign demo --out figures/"; \
	echo "  $(BIN)/mlflow ui --backend-store-uri $(MLFLOW_STORE) --default-artifact-root $(RUNS_DIR)/mlartifacts"; \
	exit $$rc

test: $(STAMP)
	bash .ci/services
	bash .ci/browser
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q

# The quick loop: ruff, mypy and every test that starts no server, no Ray and no PostgreSQL (under 3 minutes
# on 2 cores); `make test` runs them all.
FAST := not slow and not ray and not postgres and not server and not gpu
test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q -m "$(FAST)"

# ruff, then mypy over orchestrator, h2ot_core and results (the files and settings are in pyproject's [tool.mypy])
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# Benchmarks print medians and side-by-side ratios and write each table to benchmarks/results/<name>.md;
# none of them is a test. `make readme` copies those files into benchmarks/README.md.
bench: bench-core bench-data bench-engine bench-results bench-web bench-orchestration bench-official bench-train bench-precision
	@echo "Tables written under benchmarks/results/; run make readme to copy them into benchmarks/README.md"

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

# fp32, ours against the official forwards on the same weights, official sizes, batch 1 and 8 (about 15 minutes).
bench-official: $(STAMP)
	$(BIN)/python -m benchmarks.official

# Training step per clip (forward + losses + backward + optimiser) against the official step, official sizes, fp32,
# 2 threads, batch 2 (about 15 minutes on 2 idle cores). On a GPU node the same module takes
# --device cuda --dtype bf16 [--compile] (batch: the recipe's).
bench-train: $(STAMP)
	$(BIN)/python -m benchmarks.train

# Fused against explicit attention per call shape, forward and forward + backward: the measurement behind the
# kernel rule of h2ot_core/attention.py (about 10 minutes on 2 cores).
bench-attention: $(STAMP)
	$(BIN)/python -m benchmarks.attention_kernels

# bf16 vs fp32 inference and training at official sizes on 2 CPU threads (about 20 minutes; needs a CPU with
# bf16 kernels, AVX-512 or AMX: elsewhere it says so and exits 2).
bench-precision: $(STAMP)
	$(BIN)/python -m benchmarks.precision

# h2ot video: MixSTE-243 lifting frames/s unpruned vs HoT vs H2OT (fp32; bf16 where the CPU has bf16 kernels) and
# the pipeline's per-stage split on 2 threads (DETECTOR_WEIGHTS=folder of the RTMPose-s/YOLOX-tiny .onnx files
# times the real detector). About 15 minutes on 2 cores.
bench-video: $(STAMP)
	$(BIN)/python -m benchmarks.video $(if $(DETECTOR_WEIGHTS),--detector-weights $(DETECTOR_WEIGHTS))

# On a GPU node: the gpu-marked tests, the GPU precision benchmark and the bf16 training step against the official
# one (under 13 minutes).
bench-gpu: $(STAMP)
	bash benchmarks/gpu.sh

# h2ot campaign estimate vs the device time the demo grid then measures, one trial at a time (about 2 minutes).
bench-estimate: $(STAMP)
	$(BIN)/python -m benchmarks.estimate --max-concurrent 1

# Search vs hand-picked schedules at the same number of trained trials (~30 min on 2 cores).
bench-search: $(STAMP)
	$(BIN)/python -m benchmarks.search

# The paper's claim on a CPU budget (a few minutes): unpruned vs HoT vs H2OT vs TPS+TRI on synthetic data.
claim: $(STAMP)
	$(BIN)/python -m benchmarks.claim

# README.md and benchmarks/README.md: their blocks (<!-- bench:NAME --> ... <!-- /bench:NAME -->) from benchmarks/results/NAME.md.
readme: $(STAMP)
	$(BIN)/python -m benchmarks.readme

# The read-only web leaderboard over the runs dir's leaderboard (or H2OT_DB_URL), on http://127.0.0.1:8765/.
serve: $(STAMP)
	$(BIN)/h2ot serve

# The campaign page and the Pareto data of a 10,000-trial leaderboard, SQLite and PostgreSQL (medians).
bench-web: $(STAMP)
	bash .ci/services
	$(BIN)/python -m benchmarks.web

# docs/img/*.png, the README's screenshots of the web pages (a headless Chromium, see .ci/browser).
screenshots: $(STAMP)
	bash .ci/browser
	$(BIN)/python tests/web/screenshots.py docs/img

clean:
	rm -rf $(VENV)
