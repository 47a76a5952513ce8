#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan, torch-free) into build-fuzz/ and runs each
# for SECONDS (default 60) from seed corpora written by scripts/make_fuzz_corpus.py.
#   scripts/fuzz.sh [SECONDS] [TARGET...]     targets: safetensors config manifest media
# Corpora grow in build-fuzz/corpus/<target>; crashes land in build-fuzz/crashes/<target>/.
# Prints executions per target; exits non-zero when any target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(safetensors config manifest media)
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}

CC=${CC:-clang} CXX=${CXX:-clang++} cmake -S . -B "$BUILD" -DV2M_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target $(printf 'fuzz_%s ' "${TARGETS[@]}")

python3 scripts/make_fuzz_corpus.py "$BUILD/seeds" >/dev/null
failed=0
printf '%-12s %10s %8s %8s  %s\n' target execs exec/s corpus result
for t in "${TARGETS[@]}"; do
  corpus="$BUILD/corpus/$t"
  crashes="$BUILD/crashes/$t"
  mkdir -p "$corpus" "$crashes"
  log="$BUILD/fuzz_$t.log"
  # -rss_limit_mb: a declared size must never drive a huge allocation; -timeout: nor a loop.
  set +e
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
    "$BUILD/tests/fuzz/fuzz_$t" "$corpus" "$BUILD/seeds/$t" -max_total_time="$SECONDS_EACH" \
    -rss_limit_mb=2048 -timeout=20 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$crashes/" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  ncorpus=$(find "$corpus" -type f | wc -l)
  result=ok
  if [ $rc -ne 0 ]; then
    result="CRASH (see $log, $(ls "$crashes" | head -1))"
    failed=1
  fi
  printf '%-12s %10s %8s %8s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "$ncorpus" "$result"
done
exit $failed
