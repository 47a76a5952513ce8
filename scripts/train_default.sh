#!/usr/bin/env bash
# Trains the embedded default model models/v2m-tiny on SynthV2M, and its "w/o motion"
# ablation, then evaluates both plus the shuffled-video baseline. Two stages:
#   1. from scratch on SynthV2M with a key per clip (configs/synth/tiny.yaml, *_no_motion.yaml);
#   2. every clip in C (`synth --tonic C`), fine-tuned from stage 1's decoder with a fresh
#      fusion (configs/synth/tiny_c.yaml, tiny_c_no_motion.yaml): the model that is exported.
# Every step resumes where it stopped (re-run the script to continue after a kill), so on a
# CPU it can run in chunks. From the repository root:
#
#   scripts/train_default.sh [all|data|codec|init|prep|train|base|data-c|prep-c|train-c|eval|export]
#
# Environment: V2M (binary, default build/tools/v2m/v2m), THREADS (per process, default 1:
# the two models train side by side), CODEC_STEPS, TRAIN_STEPS / TRAIN_C_STEPS (default: the
# configs'), EVAL_LIMIT (test clips per evaluation, default 200; 0 = all), CODEC (the codec
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
# `both_models CMD STEM`: CMD for configs/synth/STEM.yaml and its ablation STEM_no_motion.yaml,
# side by side, each with the arguments in EXTRA.
both_models() {
  for_config "$1" "configs/synth/$2.yaml" "${EXTRA[@]}" & local a=$!
  for_config "$1" "configs/synth/$2_no_motion.yaml" "${EXTRA[@]}" & local b=$!
  wait $a
  wait $b
}
want() { [ "$STAGE" = all ] || [ "$STAGE" = "$1" ]; }
# The checkpoint with the best validation loss of run directory $1 (else the newest).
best_checkpoint() { local ck=$1/checkpoints; echo "$ck/$(cat "$ck/best" 2>/dev/null || cat "$ck/latest")"; }

# ---- stage 1: a key per clip, from scratch
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
  both_models prep tiny
fi
if want train; then
  EXTRA=()
  [ -n "${TRAIN_STEPS:-}" ] && EXTRA=(--set "train.steps=$TRAIN_STEPS")
  both_models train tiny
fi
if want base && [ ! -f runs/tiny-base/model.safetensors ]; then
  run "$V2M" export "$(best_checkpoint runs/v2m-tiny)" -o runs/tiny-base --dtype fp16
fi

# ---- stage 2: every clip in C, from stage 1's decoder
if want data-c && [ ! -f data/synth-c/manifest.jsonl ]; then
  run "$V2M" synth -o data/synth-c --clips 2000 --seconds 8 --seed 0 --tonic C
fi
if want prep-c; then
  EXTRA=()
  both_models prep tiny_c
fi
if want train-c; then
  EXTRA=()
  [ -n "${TRAIN_C_STEPS:-}" ] && EXTRA=(--set "train.steps=$TRAIN_C_STEPS")
  both_models train tiny_c
fi
if want eval; then
  # Each model at its best validation checkpoint (the one export takes), side by side.
  for_config eval configs/synth/tiny_c.yaml --split test --limit "$EVAL_LIMIT" \
    --checkpoint "$(best_checkpoint runs/v2m-tiny-c)" & a=$!
  for_config eval configs/synth/tiny_c_no_motion.yaml --split test --limit "$EVAL_LIMIT" \
    --checkpoint "$(best_checkpoint runs/v2m-tiny-c-no-motion)" & b=$!
  wait $a
  wait $b
  run "$V2M" --threads 2 eval --config configs/synth/tiny_c.yaml --split test --limit "$EVAL_LIMIT" --shuffle-video \
    --checkpoint "$(best_checkpoint runs/v2m-tiny-c)"
  # Stage 1's model on the same clips: what stage 2 changed.
  run "$V2M" --threads 2 eval --config configs/synth/tiny_c.yaml --split test --limit "$EVAL_LIMIT" \
    --model runs/tiny-base --out-dir runs/eval-base
  # The ceiling: the same metrics on the dataset's own music (what the estimators get right).
  run "$V2M" --threads 2 eval --config configs/synth/tiny_c.yaml --split test --limit "$EVAL_LIMIT" \
    --generated data/synth-c/clips --out-dir runs/eval-reference
fi
if want export; then
  run "$V2M" export "$(best_checkpoint runs/v2m-tiny-c)" -o models/v2m-tiny --dtype fp16
  du -sh models/v2m-tiny
fi
