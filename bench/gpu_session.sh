#!/usr/bin/env bash
# Run ON THE GPU MACHINE (one call of the device tool, carry [".whl"], timeout_s 570): every GPU acceptance figure of
# issue 22 in one go. Prepare the wheels here first: bash bench/gpu_prepare.sh
#   1. semples bench, stages (a) and (c) compiled, each beside its reference-style step (the speed targets)
#   2. semples bench, the other stages (cam, prompts + its feature pass, pseudo's CAM inference, segment) beside fp32
#   3. bench/realmode_gpu.py: every real-mode stage on a 224 px ToyWorld VOC export, random ViT-B-16 + DeiT-S
# Each part runs in its own process under its own time limit and writes its own file, so a part that fails or runs
# out of time leaves the others' figures. What comes back in $OUT (at most 8 files): gpu.txt, bench.json (parts 1-2
# merged), bench.log, realmode.json, realmode_objective.json, realmode.log.
# CPU check of the script itself (wheels, imports, merge): SEMPLES_GPU_SMOKE=1 OUT=/tmp/x bash bench/gpu_session.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/semples_gpu}"; W=/tmp/semples_gpu_work; mkdir -p "$OUT" "$W"
if ! python3 -c "import open_clip, fastcore, ftfy" 2>/dev/null; then   # a bare device machine: install the carried wheels
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 MPLBACKEND=Agg
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; } | tee "$OUT/gpu.txt"
python3 -c "import torch, open_clip, timm; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'open_clip', open_clip.__version__, 'timm', timm.__version__)" | tee -a "$OUT/gpu.txt"
SMOKE_B=""; SMOKE_R="--n 512 --size 224 --steps 20"
[ "${SEMPLES_GPU_SMOKE:-0}" = 1 ] && SMOKE_B=", tiny=True, device='cpu'" && SMOKE_R="--tiny --n 32 --size 64 --steps 1 --batch 4"
bench() {   # NAME LIMIT_S RUN_BENCH_ARGS
  echo "== bench part $1 ($3), limit $2 s" | tee -a "$OUT/bench.log"
  timeout "$2" python3 -c "from semples.research.bench import run_bench; run_bench($3$SMOKE_B, out='$W/bench_$1.json')" 2>&1 | tee -a "$OUT/bench.log"
}
bench ac 260 "stages='match,refine', compile=True"
bench rest 120 "stages='cam,prompts,pseudo,segment'"
python3 - "$W" "$OUT/bench.json" <<'EOF' 2>&1 | tee -a "$OUT/bench.log"
import json, sys
from pathlib import Path
from semples.research.bench import _ratios, bench_markdown
parts = [json.loads(p.read_text()) for p in sorted(Path(sys.argv[1]).glob('bench_*.json'))]
if parts:
    res = {**parts[0], 'rows': [r for p in parts for r in p['rows']], 'compile_stages': 'match,refine', 'parts': len(parts)}
    res['ratios'] = _ratios(res['rows']); Path(sys.argv[2]).write_text(json.dumps(res, indent=1)); print(bench_markdown(res))
EOF
echo "== realmode" | tee "$OUT/realmode.log"
timeout 150 python3 bench/realmode_gpu.py --out "$W/realmode" $SMOKE_R 2>&1 | tee -a "$OUT/realmode.log"
cp "$W/realmode/bench.json" "$OUT/realmode.json" 2>/dev/null || true
cp "$W/realmode/objective.json" "$OUT/realmode_objective.json" 2>/dev/null || true   # random CLIP: the numbers mean nothing, the path ran
ls -la "$OUT"
