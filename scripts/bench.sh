#!/usr/bin/env bash
# Builds the benchmarks and runs them on this machine; JSON per benchmark under
# bench-results/ and a Markdown summary (bench-results/summary.md). ~10-15 min on 2 cores.
#   scripts/bench.sh            # all
#   scripts/bench.sh quick      # skip the Model-S-shape generate runs (fp32 and mixed files)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh -DV2M_BUILD_BENCH=ON
B=${BUILD_DIR:-build}/bench
# As the CLI does for itself (tools/v2m/main.cpp; the benchmarks re-exec with it too).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
export GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-30000}
export OPENBLAS_THREAD_TIMEOUT=${OPENBLAS_THREAD_TIMEOUT:-4}  # as the CLI (include/v2m/runtime.h)
OUT=bench-results
mkdir -p "$OUT"
run() { local name=$1; shift; echo "bench: $name" >&2; "$@" > "$OUT/$name.json"; cat "$OUT/$name.json"; }
run machine "$B/bench_machine"
[ -x "$B/bench_media" ] && run media "$B/bench_media"
# Decoder step for 30 s of audio, fp32 / bf16 / int8 side by side (+ agreement with fp32).
[ -x "$B/bench_decoder" ] && run decoder "$B/bench_decoder" --seconds 30 --steps 6
[ -x "$B/bench_clip_encodec" ] && run clip_encodec "$B/bench_clip_encodec"
run generate_tiny "$B/bench_generate" --model configs/model/tiny.yaml --video examples/demo.mp4 --duration 30
# The embedded default model, as `v2m generate` runs it.
run generate_v2m_tiny "$B/bench_generate" --model models/v2m-tiny --video examples/demo.mp4 --duration 30
if [ "${1:-}" != quick ]; then
  S_DIR=$(mktemp -d)
  trap 'rm -rf "$S_DIR"' EXIT
  "$B/bench_generate" --save "$S_DIR/s" --model configs/model/s.yaml > /dev/null
  # Load from the page cache (just written), generate 30 s with the default weights dtype.
  run generate_s "$B/bench_generate" --model "$S_DIR/s" --video examples/demo.mp4 --duration 30
  # The layout meant for CPU generation: decoder linears bf16 as stored, the rest fp32.
  "${BUILD_DIR:-build}/tools/v2m/v2m" -q export "$S_DIR/s" -o "$S_DIR/mixed" --dtype mixed
  rm -rf "$S_DIR/s"
  run generate_s_mixed "$B/bench_generate" --model "$S_DIR/mixed" --video examples/demo.mp4 --duration 30
fi
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
rows = []
for f in sorted(os.listdir(out)):
    if f.endswith(".json"):
        with open(os.path.join(out, f)) as fh:
            rows.append((f[:-5], json.load(fh)))
def flat(j):
    return ", ".join(f"{k}={v}" for k, v in j.items() if not isinstance(v, (dict, list)) and k != "bench")
with open(os.path.join(out, "summary.md"), "w") as md:
    md.write("| bench | key figures |\n|---|---|\n")
    for name, j in rows:
        md.write(f"| {name} | {flat(j)} |\n")
        for sub in j.get("dtypes", []):
            md.write(f"| {name} {sub.get('weights_dtype')} | {flat(sub)} |\n")
        if "stages_s" in j:
            md.write(f"| {name} stages (s) | {flat(j['stages_s'])} |\n")
    dec = dict(rows).get("decoder")
    if dec:
        md.write("\nKey ratio, decoder step / (weight bytes per step / triad bandwidth "
                 f"{dec['triad_bandwidth_gbs']} GB/s):\n\n")
        for sub in dec["dtypes"]:
            md.write(f"- {sub['weights_dtype']}: {sub['step_ms_mean']} ms / {sub['bandwidth_bound_ms']} ms = "
                     f"{sub['step_over_bound']}x (top-1 match vs fp32 {sub['top1_match']}, cosine {sub['logits_cosine']})\n")
print(open(os.path.join(out, "summary.md")).read())
PY
