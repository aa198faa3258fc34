#!/usr/bin/env bash
# Set up a virtual environment from scratch (if needed) and run the default test suite.
#   bash test.sh            # fast suite (no `slow` tests), ~10 minutes on 2 CPU cores
#   bash test.sh -m slow    # the long tests (real data, training runs, distributed)
set -euo pipefail
cd "$(dirname "$0")"
VENV="${MSNN_VENV:-.venv}"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
# torch is pinned below 2.14 so that pip takes the CPU wheel on machines that have it locally.
"$VENV/bin/python" -m pip install -q -e ".[test]"

# Headless Chromium + playwright-core drive the Gradio Space in tests/test_space.py.
if [ -f scripts/install_browser.sh ]; then
  bash scripts/install_browser.sh
fi

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export GRADIO_ANALYTICS_ENABLED=False TOKENIZERS_PARALLELISM=false
# Tiny models: one intra-op thread is faster and keeps subprocess tests from oversubscribing the cores.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
"$VENV/bin/ruff" check src tests trainers benchmarks spaces
"$VENV/bin/ruff" format --check src tests trainers benchmarks spaces
"$VENV/bin/python" -m pytest -q -rs "$@"
