#!/usr/bin/env bash
# One prepared GPU check (under 10 minutes on one GPU): the CUDA tests, then training
# throughput and peak memory at batch 4,096 and 65,536, dense vs blockwise, fp32 vs bf16.
# Run from the repository root on a machine with CUDA; results go to ${OUT:-benchmarks/results}.
set -euo pipefail
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu_info.txt"
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" \
  | tee -a "$out/gpu_info.txt"
python -m pytest -q -m gpu tests/ 2>&1 | tee "$out/gpu_tests.txt"
python benchmarks/throughput.py --device cuda --sizes 4096,65536 --precisions fp32,bf16 \
  --paths dense,blockwise --block-size 4096 --max-dense-gib 100 --timeout 240 \
  --out "$out/throughput_gpu"
