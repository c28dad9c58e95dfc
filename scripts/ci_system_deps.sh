#!/usr/bin/env bash
# System packages the test suite needs beyond pip: Debian's chromium + chromium-driver for
# tests/test_browser.py (headless browser demo test). Idempotent: does nothing when both exist.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    echo "ci_system_deps: chromium and chromedriver already installed"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
echo "ci_system_deps: installed $(chromium --version 2>/dev/null | head -1)"
