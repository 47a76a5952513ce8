#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer build (V2M_SANITIZE) and test run, in build-asan/.
#   scripts/sanitize.sh           every test group (ctest), LibTorch layers included
#   scripts/sanitize.sh --quick   the torch-free groups only (core, media): what scripts/test.sh runs
# The quick mode builds just v2m_core, v2m_media and their test binaries (make's <target>/fast
# skips the CLI dependency the test groups carry), so it stays within the CI budget.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${ASAN_BUILD_DIR:-build-asan}
MODE=${1:-full}
JOBS=$(nproc)

# LibTorch is not instrumented; leak reports from its static initialisers and thread pools are
# not ours. ODR warnings come from libraries (fmt, spdlog) linked into both torch and v2m.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:detect_odr_violation=0:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DV2M_SANITIZE=ON -DV2M_BUILD_TESTS=ON -DV2M_BUILD_BENCH=OFF >/dev/null
if [ "$MODE" = "--quick" ]; then
  make -C "$BUILD" -j"$JOBS" --no-print-directory v2m_core/fast
  make -C "$BUILD" -j"$JOBS" --no-print-directory v2m_media/fast
  make -C "$BUILD" -j"$JOBS" --no-print-directory v2m_test_core/fast v2m_test_media/fast
  for t in core media; do
    echo "== ASan+UBSan: v2m_test_$t"
    "$BUILD/tests/v2m_test_$t" --gtest_brief=1
  done
else
  cmake --build "$BUILD" -j"$JOBS"
  cd "$BUILD"
  ctest --output-on-failure -j"$JOBS"
fi
