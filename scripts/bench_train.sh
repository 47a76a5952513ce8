#!/usr/bin/env bash
# Training throughput on this machine (JSON lines + a Markdown summary in bench-results/):
#  - v2m-tiny (10 s window) and the Model-S shape (2 s window, random weights) on CPU,
#  - 2-process data-parallel scaling: `v2m train --nproc 2` (1 thread each) vs one process
#    with 1 thread and with all threads, same global batch.
# Usage: scripts/bench_train.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-${BUILD_DIR:-build}}
OUT=bench-results
mkdir -p "$OUT"
export OMP_WAIT_POLICY=PASSIVE
J="$OUT/train.jsonl"
: > "$J"
"$B/bench/bench_train" configs/model/tiny.yaml --window 10 --batch 8 --steps 5 | tee -a "$J"
"$B/bench/bench_train" configs/model/s.yaml --window 2 --batch 2 --steps 2 | tee -a "$J"
"$B/bench/bench_train" configs/model/s.yaml --window 2 --batch 2 --steps 2 --freeze-decoder | tee -a "$J"

# Scaling: the same synthetic tiny run, 1 rank x 1 thread, 1 rank x all threads, 2 ranks x 1 thread.
D=$(mktemp -d /tmp/v2m_bench_scale_XXXXXX)
trap 'rm -rf "$D"' EXIT
"$B/bench/bench_train" configs/model/tiny.yaml --window 10 --batch 8 --steps 10 --setup-only "$D" > /dev/null
CFG="$D/run.yaml"
V2M="$B/tools/v2m/v2m"
time_run() {  # seconds for 10 steps after a 1-step warm-up (one checkpoint load + save included)
  local g=() t=()
  while [ $# -gt 0 ]; do case "$1" in --threads) g+=("$1" "$2"); shift 2;; *) t+=("$1"); shift;; esac; done
  rm -rf "$D/run"
  "$V2M" -q "${g[@]}" train --config "$CFG" --set train.steps=11 --max-steps-this-run 1 "${t[@]}" > /dev/null 2>&1
  local t0 t1
  t0=$(date +%s.%N)
  "$V2M" -q "${g[@]}" train --config "$CFG" --set train.steps=11 "${t[@]}" > /dev/null 2>&1
  t1=$(date +%s.%N)
  python3 -c "print($t1 - $t0)"
}
t1=$(time_run --threads 1)
tall=$(time_run)
t2=$(time_run --threads 1 --nproc 2)  # each worker 1 thread
python3 - "$t1" "$tall" "$t2" "$(nproc)" <<'PY' | tee -a "$J"
import json, sys
t1, tall, t2, cores = map(float, sys.argv[1:])
sps = lambda t: 80 / t  # 10 steps x global batch 8
print(json.dumps({"bench": "train_scaling", "model": "v2m-tiny", "global_batch": 8, "cores": int(cores),
                  "samples_per_s_1rank_1thread": round(sps(t1), 3),
                  "samples_per_s_1rank_all_threads": round(sps(tall), 3),
                  "samples_per_s_2ranks_1thread": round(sps(t2), 3),
                  "efficiency_2ranks_vs_2x1rank": round(sps(t2) / (2 * sps(t1)), 3),
                  "speedup_2ranks_vs_1rank_all_threads": round(sps(t2) / sps(tall), 3)}))
PY
python3 - "$J" > "$OUT/train.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| benchmark | figure |\n|---|---|")
for r in rows:
    if r["bench"] == "train":
        tag = f'{r["model"]} train, window {r["window_s"]:g} s, batch {r["batch"]}' + (", decoder frozen" if r["freeze_decoder"] else "")
        print(f'| {tag} | {r["samples_per_s"]:.3f} samples/s ({r["threads"]} threads) |')
    else:
        print(f'| 2-rank Gloo scaling (tiny) | {r["samples_per_s_2ranks_1thread"]} vs 2 x {r["samples_per_s_1rank_1thread"]} samples/s: efficiency {r["efficiency_2ranks_vs_2x1rank"]}; vs 1 rank x {int(r["cores"])} threads: {r["speedup_2ranks_vs_1rank_all_threads"]}x |')
PY
cat "$OUT/train.md"
