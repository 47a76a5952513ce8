#!/usr/bin/env bash
# Trains the embedded default model models/v2m-tiny from scratch on SynthV2M, and its
# "w/o motion" ablation, then evaluates both plus the shuffled-video baseline.
# Every step resumes where it stopped (re-run the script to continue after a kill), so on a
# CPU it can run in chunks. From the repository root:
#
#   scripts/train_default.sh [all|data|codec|init|prep|train|eval|export]
#
# Environment: V2M (binary, default build/tools/v2m/v2m), THREADS (per process, default 1:
# the two models train side by side), CODEC_STEPS, TRAIN_STEPS (default: the configs'),
# EVAL_LIMIT (test clips per evaluation, default 200 of the 400; 0 = all), CODEC (the codec
# `init` takes: default runs/codec/codec, which the codec stage trains; a model directory such
# as models/v2m-tiny reuses its codec and skips the codec stage).
set -euo pipefail
cd "$(dirname "$0")/.."
V2M=${V2M:-build/tools/v2m/v2m}
THREADS=${THREADS:-1}
STAGE=${1:-all}
EVAL_LIMIT=${EVAL_LIMIT:-200}
CODEC=${CODEC:-runs/codec/codec}
run() { echo "+ $*" >&2; "$@"; }
# `v2m <command>` for the run config $2 with THREADS threads, then the remaining arguments.
for_config() { local cmd=$1 cfg=$2; shift 2; run "$V2M" --threads "$THREADS" "$cmd" --config "$cfg" "$@"; }
# The same command for the model with motion and the ablation, side by side.
both_models() {
  for_config "$@" configs/synth/tiny.yaml "${EXTRA[@]}" & local a=$!
  for_config "$@" configs/synth/tiny_no_motion.yaml "${EXTRA[@]}" & local b=$!
  wait $a
  wait $b
}
want() { [ "$STAGE" = all ] || [ "$STAGE" = "$1" ]; }

if want data && [ ! -f data/synth/manifest.jsonl ]; then
  run "$V2M" synth -o data/synth --clips 4000 --seconds 8 --seed 0
fi
if want codec && [ "$CODEC" = runs/codec/codec ]; then
  run "$V2M" --threads 2 train-codec --config configs/synth/codec.yaml ${CODEC_STEPS:+--steps "$CODEC_STEPS"}
fi
if want init && [ ! -f runs/tiny-init/model.safetensors ]; then
  run "$V2M" init configs/synth/model.yaml --codec "$CODEC" -o runs/tiny-init
fi
if want prep; then
  EXTRA=()
  both_models prep
fi
if want train; then
  EXTRA=()
  [ -n "${TRAIN_STEPS:-}" ] && EXTRA=(--set "train.steps=$TRAIN_STEPS")
  both_models train
fi
if want eval; then
  EXTRA=(--split test --limit "$EVAL_LIMIT")
  both_models eval
  run "$V2M" --threads 2 eval --config configs/synth/tiny.yaml --split test --limit "$EVAL_LIMIT" --shuffle-video
  # The ceiling: the same metrics on the dataset's own music (what the estimators get right).
  run "$V2M" --threads 2 eval --config configs/synth/tiny.yaml --split test --limit "$EVAL_LIMIT" \
    --generated data/synth/clips --out-dir runs/eval-reference
fi
if want export; then
  # The checkpoint with the best validation loss (else the newest); `best`/`latest` hold its name.
  ck=runs/v2m-tiny/checkpoints
  name=$(cat "$ck/best" 2>/dev/null || cat "$ck/latest")
  run "$V2M" export "$ck/$name" -o models/v2m-tiny --dtype fp16
  du -sh models/v2m-tiny
fi
