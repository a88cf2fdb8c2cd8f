#!/usr/bin/env bash
# Wheels the lent GPU machine lacks (its image has torch, cupy, numba, numba-cuda, scipy, tifffile,
# tqdm, matplotlib, pytest but not pydantic), downloaded here into .whl/ (git-ignored through
# .git/info/exclude) for the device tool to carry. See DEVELOPERS.md, "GPU check".
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
rm -rf .whl && mkdir .whl
for spec in "pydantic==2.14.3" "pydantic-core==2.50.4" "annotated-types" "typing-inspection" \
        "typing-extensions>=4.16"; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl "$spec"
done
ls .whl
