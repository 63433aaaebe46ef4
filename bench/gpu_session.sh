#!/usr/bin/env bash
# Run ON THE GPU MACHINE (one call of the device tool, carry [".whl"], timeout_s 580): every GPU acceptance figure of
# issues 7 and 9 in one go. Prepare the wheels here first: bash bench/gpu_prepare.sh
#   issue 9: semples bench (stages cam, match, prompts, refine, pseudo, segment; fast vs reference-style / fp32), compiled
#   issue 7: bench/realmode_gpu.py (every real-mode stage on a 224 px ToyWorld VOC export, random ViT-B-16 + DeiT-S)
# Results land in $OUT (bench.json, realmode.json, logs) so they come back with the call.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/semples_gpu}"; mkdir -p "$OUT"
if ! python3 -c "import open_clip, fastcore, ftfy" 2>/dev/null; then   # a bare device machine: install the carried wheels
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 MPLBACKEND=Agg
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, open_clip, timm; print('torch', torch.__version__, 'open_clip', open_clip.__version__, 'timm', timm.__version__)" | tee -a "$OUT/gpu.txt"
# issue 9 (about 3-5 min with both compiles): fast vs reference-style stage (a)/(c), fp32 baselines for b and CAM
timeout 330 python3 -c "from semples.research.bench import run_bench; run_bench(compile=True, out='$OUT/bench')" 2>&1 | tee "$OUT/bench.log"
# issue 7 (about 1-2 min): every real-mode stage, 512 images at 224 px, 20 steps each
timeout 200 python3 bench/realmode_gpu.py --out /tmp/realmode --n 512 --size 224 --steps 20 2>&1 | tee "$OUT/realmode.log"
cp /tmp/realmode/bench.json "$OUT/realmode.json" 2>/dev/null || true
cp /tmp/realmode/objective.json "$OUT/realmode_objective.json" 2>/dev/null || true   # the objective check path on GPU (random CLIP: numbers meaningless)
