#!/usr/bin/env bash
# One entry point for newcomers and CI:
#   bash run.sh demo [ARGS]   set up (first time), then run the built-in demo
#   bash run.sh test [--slow] set up (first time), then run the tests (--slow adds the slow ones)
#   bash run.sh setup         only set up
# Setup makes a virtual environment in .venv (override with SYNTHCARE_VENV) and installs a CPU
# build of torch unless torch is already importable there: install your own (e.g. CUDA) torch
# into that environment first if you want a GPU build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
VENV="${SYNTHCARE_VENV:-.venv}"
PY="${PYTHON:-python3}"

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
  fi
  # shellcheck disable=SC1091
  . "$VENV/bin/activate"
  if ! python -c "import torch" >/dev/null 2>&1; then
    # CPU wheel first: without it pip would pull a multi-GB CUDA build. The extra index serves
    # CPU wheels online; offline machines with a local CPU wheel (pip's find-links) use that.
    python -m pip install --retries 1 "torch==2.13.0" \
      --extra-index-url https://download.pytorch.org/whl/cpu
  fi
  if ! python -c "import simulate, restore, pytest" >/dev/null 2>&1 \
     || [ pyproject.toml -nt "$VENV/.synthcare-installed" ]; then
    python -m pip install -e ".[dev]"
    touch "$VENV/.synthcare-installed"
  fi
}

cmd="${1:-}"
shift || true
case "$cmd" in
  setup) setup ;;
  demo) setup; synthcare demo "$@" ;;
  test)
    setup
    if [ "${1:-}" = "--slow" ]; then
      shift
      python -m pytest -m "not gpu" "$@"
    else
      python -m pytest "$@"
    fi
    ;;
  *) echo "usage: bash run.sh {demo|test [--slow]|setup}" >&2; exit 2 ;;
esac
