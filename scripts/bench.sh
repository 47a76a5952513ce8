#!/usr/bin/env bash
# Builds the benchmarks and runs them on this machine; JSON per benchmark under
# bench-results/ and a Markdown summary (bench-results/summary.md).
#   scripts/bench.sh            # all
#   scripts/bench.sh quick      # skip the Model-S-shape generate run
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh -DV2M_BUILD_BENCH=ON
B=${BUILD_DIR:-build}/bench
# As the CLI does for itself (tools/v2m/main.cpp): no spinning OpenMP workers.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
OUT=bench-results
mkdir -p "$OUT"
run() { local name=$1; shift; echo "bench: $name" >&2; "$@" > "$OUT/$name.json"; cat "$OUT/$name.json"; }
run machine "$B/bench_machine"
[ -x "$B/bench_media" ] && run media "$B/bench_media"
[ -x "$B/bench_decoder" ] && run decoder "$B/bench_decoder"
[ -x "$B/bench_clip_encodec" ] && run clip_encodec "$B/bench_clip_encodec"
run generate_tiny "$B/bench_generate" --model configs/model/tiny.yaml --video examples/demo.mp4
if [ "${1:-}" != quick ]; then
  run generate_s "$B/bench_generate" --model configs/model/s.yaml --video examples/demo.mp4 --duration 4
fi
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
rows = []
for f in sorted(os.listdir(out)):
    if f.endswith(".json"):
        with open(os.path.join(out, f)) as fh:
            rows.append((f[:-5], json.load(fh)))
with open(os.path.join(out, "summary.md"), "w") as md:
    md.write("| bench | key figures |\n|---|---|\n")
    for name, j in rows:
        flat = ", ".join(f"{k}={v}" for k, v in j.items() if not isinstance(v, (dict, list)) and k != "bench")
        md.write(f"| {name} | {flat} |\n")
print(open(os.path.join(out, "summary.md")).read())
PY
