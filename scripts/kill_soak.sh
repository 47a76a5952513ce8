#!/usr/bin/env bash
# Fault soak for training: kill -9 a CPU training run at random moments N times (default 20),
# including in the middle of checkpoint writes, resume after each kill, and check that
#  - after every kill the `latest` checkpoint is a loadable model directory,
#  - the run always resumes, and
#  - the final parameters equal an uninterrupted run's, byte for byte.
# Usage: scripts/kill_soak.sh [KILLS] [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
KILLS=${1:-20}
B=${2:-${BUILD_DIR:-build}}
V2M="$B/tools/v2m/v2m"
D=$(mktemp -d /tmp/v2m_soak_XXXXXX)
trap 'rm -rf "$D"' EXIT
export OMP_WAIT_POLICY=PASSIVE
"$B/bench/bench_train" configs/model/tiny.yaml --window 2 --batch 4 --steps 40 --setup-only "$D" > /dev/null
CFG="$D/run.yaml"
SETS=(--set train.steps=200 --set train.ckpt_every=3 --set train.keep_last=2)

echo "soak: reference run (uninterrupted)"
"$V2M" -q --threads 1 train --config "$CFG" "${SETS[@]}" --set out_dir="$D/ref" > /dev/null
REF="$D/ref/checkpoints/step-00000200/model.safetensors"

# Checkpoint writes are stretched (fault-injection delay) so a fair share of kills land in one.
export V2M_FAULT_CHECKPOINT_DELAY_MS=${V2M_FAULT_CHECKPOINT_DELAY_MS:-300}
mid_write=0 passed=0
for i in $(seq 1 "$KILLS"); do
  "$V2M" -q --threads 1 train --config "$CFG" "${SETS[@]}" --set out_dir="$D/soak" > "$D/log" 2>&1 &
  pid=$!
  sleep "$(python3 -c "import random; print(round(random.uniform(0.8, 4.0), 2))")"
  if ls -d "$D"/soak/checkpoints/.tmp-* > /dev/null 2>&1; then mid_write=$((mid_write + 1)); fi
  kill -9 "$pid" 2> /dev/null || true
  wait "$pid" 2> /dev/null || true
  latest=$(cat "$D/soak/checkpoints/latest" 2> /dev/null || true)
  if [ -n "$latest" ]; then
    if "$V2M" -q info "$D/soak/checkpoints/$latest" > /dev/null 2>&1; then
      passed=$((passed + 1))
    else
      echo "soak: kill $i: latest checkpoint $latest is NOT loadable" >&2
    fi
  else
    passed=$((passed + 1))  # killed before the first checkpoint: nothing to lose
  fi
  echo "soak: kill $i/$KILLS -> latest=${latest:-none}"
done
unset V2M_FAULT_CHECKPOINT_DELAY_MS
"$V2M" -q --threads 1 train --config "$CFG" "${SETS[@]}" --set out_dir="$D/soak" > /dev/null
if cmp -s "$REF" "$D/soak/checkpoints/step-00000200/model.safetensors"; then same=yes; else same=no; fi
echo "{\"kills\": $KILLS, \"killed_mid_checkpoint\": $mid_write, \"latest_loadable_after_kill\": $passed, \"final_params_equal_uninterrupted\": \"$same\"}"
[ "$passed" -eq "$KILLS" ] && [ "$same" = yes ]
