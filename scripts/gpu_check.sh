#!/usr/bin/env bash
# GPU readiness in a few minutes on one GPU: the Triton scan kernels checked on the GPU, the AU-TTT vs ViT-S/16
# benchmark (224-896 px, forward and training step, bf16 autocast, synchronised timing, CUDA peak memory, the
# attention control and model.compile: true alongside), a short real training of the paper-size model (AdamW,
# the paper's losses, bf16 with the TTT state in fp32) that must bring its loss down, and last the whole model
# compiled and replayed as CUDA graphs at 224 px (au_ttt_graphs). Results:
# results/bench/bench-cuda-bf16-*.json, scaling.png, train-check-cuda-*.json, graphs/bench-cuda-bf16-*.json.
# Run from anywhere:   scripts/gpu_check.sh                          (uses `au-ttt` on PATH)
#                      AU_TTT="python -m au_ttt.cli" scripts/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 DVC_NO_ANALYTICS=1 MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
AU_TTT=${AU_TTT:-au-ttt}
OUT=${OUT:-results/bench}
PYTHON=${PYTHON:-python}

"$PYTHON" - <<'PY'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit("gpu_check: torch sees no CUDA device (torch " + torch.__version__ + "); nothing to measure")
p = torch.cuda.get_device_properties(0)
print(f"gpu_check: {p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, "
      f"CUDA {torch.version.cuda}, bf16 {torch.cuda.is_bf16_supported()}")
PY
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.used,memory.total,utilization.gpu --format=csv

start=$(date +%s)
# the Triton scan kernels compiled for this GPU against the plain dual form (outputs and every gradient)
"$PYTHON" -m pytest -q -p no:cacheprovider tests/test_ttt_backends.py -k cuda
# shellcheck disable=SC2086  # AU_TTT may be a command with arguments
$AU_TTT bench --device cuda --amp bf16 --out "$OUT" \
  --models au_ttt_vit_s16 timm_vit_s16 au_ttt_attention au_ttt_compiled \
  --warmup 3 --iters 10 --train-check 60 --config config/paper.yaml
# last, so its compile cannot cost the results above: the whole model compiled (inductor kernels around the Triton
# scan) and replayed as CUDA graphs at 224 px — how much of the step the launches were; cold compile takes minutes,
# so it is cut off after GRAPHS_TIMEOUT seconds (default 300; lower it when the GPU session is short)
# shellcheck disable=SC2086
timeout "${GRAPHS_TIMEOUT:-300}" $AU_TTT bench --device cuda --amp bf16 --out "$OUT/graphs" --sizes 224 --no-ops \
  --models au_ttt_vit_s16 timm_vit_s16 au_ttt_graphs --warmup 3 --iters 10 \
  || echo "gpu_check: the CUDA-graphs benchmark did not finish (exit $?); the results above stand"
echo "gpu_check: done in $(( $(date +%s) - start )) s; results in $OUT/"
