#!/usr/bin/env bash
# Headless Chromium (Debian) + playwright-core (npm) for the Space's browser test (tests/test_space.py).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is not installed and apt-get is not usable: the browser test will be skipped" >&2
  fi
fi
if command -v npm >/dev/null 2>&1 && [ ! -d tests/e2e/node_modules/playwright-core ]; then
  npm ci --prefix tests/e2e --no-audit --no-fund --silent
fi
