#!/usr/bin/env bash
# Is semples/ exactly what nbdev_export makes of the notebooks, and are the notebooks clean?
# Works on a scratch copy, so your working files are never touched.
# A notebook saved by JupyterLab (execution counts, kernel metadata) is only reported here, so opening and saving a
# notebook never breaks the test command; in CI (CI=true), where the files come from git, it is an error.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cp -r "$root/nbs" "$root/semples" "$root/settings.ini" "$tmp/"
snap() { (cd "$1" && find $2 -type f \( -name '*.ipynb' -o -name '*.py' \) \
            -not -path '*/.ipynb_checkpoints/*' -not -path '*/__pycache__/*' | LC_ALL=C sort | xargs sha256sum); }
nbs_before=$(snap "$tmp" nbs)
(cd "$tmp" && nbdev_clean >/dev/null)
nbs_clean=$(snap "$tmp" nbs); lib_before=$(snap "$tmp" semples)
(cd "$tmp" && nbdev_export >/dev/null)
lib_after=$(snap "$tmp" semples)
if [ "$lib_before" != "$lib_after" ]; then
  echo "FAIL: semples/ is out of sync with nbs/. Files that nbdev_export would change or create:"
  diff <(echo "$lib_before") <(echo "$lib_after") | grep '^>' | awk '{print "  " $3}'
  echo "Edit the notebooks (never semples/*.py by hand), then run: nbdev_export"
  exit 1
fi
if [ "$nbs_before" != "$nbs_clean" ]; then
  dirty=$(diff <(echo "$nbs_before") <(echo "$nbs_clean") | grep '^>' | awk '{print "  " $3}' || true)
  if [ "${CI:-}" = "true" ]; then
    echo "FAIL: notebooks not clean (run nbdev_clean, then commit):"; echo "$dirty"; exit 1
  fi
  echo "note: notebooks saved by JupyterLab (execution counts or metadata; run nbdev_clean before committing):"; echo "$dirty"
fi
echo "semples/ in sync with nbs/"
