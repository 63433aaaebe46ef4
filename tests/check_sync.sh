#!/usr/bin/env bash
# Are the notebooks clean and is semples/ exactly what nbdev_export makes of them?
# Runs nbdev_clean + nbdev_export on a scratch copy, so your working files are never touched.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cp -r "$root/nbs" "$root/semples" "$root/settings.ini" "$tmp/"
snap() { (cd "$1" && find nbs semples -type f \( -name '*.ipynb' -o -name '*.py' \) \
            -not -path '*/.ipynb_checkpoints/*' -not -path '*/__pycache__/*' | LC_ALL=C sort | xargs sha256sum); }
before=$(snap "$tmp")
(cd "$tmp" && nbdev_clean >/dev/null && nbdev_export >/dev/null)
after=$(snap "$tmp")
if [ "$before" != "$after" ]; then
  echo "FAIL: notebooks and library are out of sync. Files that nbdev_clean/nbdev_export would change or create:"
  diff <(echo "$before") <(echo "$after") | grep '^>' | awk '{print "  " $3}'
  echo "Edit the notebooks (never semples/*.py by hand), then run: nbdev_clean && nbdev_export"
  exit 1
fi
echo "notebooks clean, semples/ in sync with nbs/"
