#!/usr/bin/env bash
# GPU readiness in under 8 minutes on one GPU: the gpu-marked tests (a tiny trial, predict and profile on
# CUDA in fp32, bf16 and fp16; a training loop without per-step syncs), then the GPU precision benchmark
# (fp32 vs bf16; unpruned, HoT and H2OT; batch 1 and 32; FPS as the papers count it: output frames per
# second), then the training step per clip, ours in bf16 with compiled blocks against the official step in fp32
# at the recipes' official batch sizes (benchmarks.train; not yet timed on a GPU node, hence its own timeout).
# Writes benchmarks/results/precision_gpu.md and train_cuda_bf16.md (not the CPU tables) and returns non-zero
# if a test or a benchmark fails.
#
#   bash benchmarks/gpu.sh            # from the repository root, with the CUDA build of torch installed
#   PY=python bash benchmarks/gpu.sh  # another interpreter than .venv/bin/python
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
"$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "benchmarks/gpu.sh: no CUDA device visible to torch " + torch.__version__ + "; install the CUDA build (README, Set-up)")'
"$PY" -c 'import torch; print("torch", torch.__version__, "on", torch.cuda.get_device_name(0))'
status=0
timeout 180 "$PY" -m pytest -q -m gpu tests/gpu -p no:cacheprovider || status=$?
# With the bf16 + compile columns: on an H200 node (16 cores) each variant compiled in about a second, cold.
timeout 240 "$PY" -m benchmarks.precision --device cuda --batches 1,32 --repeats 10 --threads 4 \
    --sections gemm,infer,train,modes --out benchmarks/results/precision_gpu.md || status=$?
timeout 300 "$PY" -m benchmarks.train --device cuda --dtype bf16 --compile --repeats 5 --threads 4 \
    --out benchmarks/results/train_cuda_bf16.md || status=$?
exit $status
