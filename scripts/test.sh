#!/usr/bin/env bash
# Installs what is missing, builds v2m with its tests, and runs them with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh -DV2M_BUILD_TESTS=ON
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j"$(nproc)"
# The torch-free groups (core, media: parsers, decoders, hostile inputs) again under
# ASan+UBSan, in build-asan/ (a few minutes); the full sanitizer run is scripts/sanitize.sh.
cd "$OLDPWD"
bash scripts/sanitize.sh --quick
