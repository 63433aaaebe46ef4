#!/usr/bin/env bash
# The project's test command (README "Test"; CI runs it through .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
export MPLBACKEND="${MPLBACKEND:-Agg}" HF_HUB_OFFLINE=1 OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
bash tests/check_sync.sh                                   # 1. notebooks clean, library in sync
python tests/readme.py --check                             # 2. README.md generated from nbs/index.ipynb
timeout 1800 nbdev_test --n_workers 2 --timing             # 3. every notebook as a test (slow/gpu cells skipped)
timeout 1800 semples render --out _site                    # 4. course pages render (HTML in _site/)
timeout 1200 python -m pytest -q tests                     # 5. pytest last: its summary closes the run
