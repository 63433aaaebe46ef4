#!/usr/bin/env bash
# Run HERE (a machine with pip access), before a GPU session: fetches the wheels the bare GPU machine lacks into .whl/
# (ignored by git; the device tool's `carry: [".whl"]` takes them along). The GPU image already has torch, torchvision,
# timm, torchmetrics, tqdm, matplotlib, safetensors, huggingface_hub and regex (see the device tool's KINDS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir -p .whl
for spec in open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4 fastcore==1.14.5; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
    -d .whl "$spec"
done
ls -la .whl && du -sh .whl
