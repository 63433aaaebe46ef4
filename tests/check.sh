#!/usr/bin/env bash
# The project's test command (README "Test"; CI runs it through .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
export MPLBACKEND="${MPLBACKEND:-Agg}" HF_HUB_OFFLINE=1 OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
bash tests/check_sync.sh                                   # 1. notebooks clean, library in sync
python tests/readme.py --check                             # 2. README.md generated from nbs/index.ipynb
IN_TEST=1 timeout 1800 semples render --out _site          # 3. every notebook run once as a test (nbdev_test's engine and skip rules:
                                                           #    slow/gpu cells skipped; exit 1 on any error) and kept as HTML in _site/
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || [ -n "${SEMPLES_CHROMIUM:-}" ] ||
  echo "NOTE: no Chromium on this machine: the real-browser test (tests/test_browser.py) will be SKIPPED (apt-get install chromium)"
timeout 1200 python -m pytest -q -rs -n 2 -o tmp_path_retention_policy=failed tests   # 4. pytest on 2 processes (the real-browser test among them; -rs prints
                                                           #    why a test was skipped; tmp folders kept only for failed tests), last: its summary closes the run
