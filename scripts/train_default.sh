#!/usr/bin/env bash
# Trains the embedded default model models/v2m-tiny on SynthV2M, and its "w/o motion"
# ablation, then evaluates both plus the shuffled-video baseline. Three stages:
#   1. from scratch on SynthV2M with a key per clip (configs/synth/tiny.yaml, *_no_motion.yaml);
#   2. every clip in C (`synth --tonic C`), fine-tuned from stage 1's decoder with a fresh
#      fusion (configs/synth/tiny_c.yaml, tiny_c_no_motion.yaml): the model that is exported;
#   3. the codec's decoder alone fine-tuned on fresh clips (configs/synth/codec_ft.yaml) and
#      swapped into that export: models/v2m-tiny.
# Every step resumes where it stopped (re-run the script to continue after a kill), so on a
# CPU it can run in chunks. From the repository root:
#
#   scripts/train_default.sh [all|data|codec|init|prep|train|base|data-c|prep-c|train-c|export|data-ft|codec-ft|eval]
#
# Environment: V2M (binary, default build/tools/v2m/v2m), THREADS (per process, default 1:
# the two models train side by side), CODEC_STEPS, TRAIN_STEPS / TRAIN_C_STEPS (default: the
# configs'), EVAL_LIMIT (test clips per evaluation, default 200; 0 = all), CODEC (the codec
# `init` takes: default runs/codec/codec, which the codec stage trains; a model directory such
# as models/v2m-tiny reuses its codec and skips the codec stage), CODEC_FT_STEPS.
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
if want export; then
  [ -f runs/tiny-c/model.safetensors ] ||
    run "$V2M" export "$(best_checkpoint runs/v2m-tiny-c)" -o runs/tiny-c --dtype fp16
  [ -f runs/tiny-c-no-motion/model.safetensors ] ||
    run "$V2M" export "$(best_checkpoint runs/v2m-tiny-c-no-motion)" -o runs/tiny-c-no-motion --dtype fp16
fi

# ---- stage 3: the codec's decoder alone, fine-tuned (encoder and codebooks frozen, so the
# tokens keep their meaning), then swapped into the exported model
if want data-ft && [ ! -f data/synth-ft/manifest.jsonl ]; then
  run "$V2M" synth -o data/synth-ft --clips 2000 --seconds 8 --seed 11
fi
if want codec-ft; then
  run "$V2M" --threads 2 train-codec --config configs/synth/codec_ft.yaml ${CODEC_FT_STEPS:+--steps "$CODEC_FT_STEPS"}
  run "$V2M" export runs/tiny-c -o models/v2m-tiny --dtype fp16 --codec runs/codec-ft/codec
  run "$V2M" export runs/tiny-c-no-motion -o runs/tiny-c-no-motion-ft --dtype fp16 --codec runs/codec-ft/codec
  du -sh models/v2m-tiny
fi

# ---- evaluation of the final models (each stage-2 model at its best validation checkpoint,
# with the fine-tuned codec), side by side, on the test split
if want eval; then
  # `ev STEM ARGS`: v2m eval with configs/synth/STEM.yaml and ARGS.
  ev() { local stem=$1; shift; for_config eval "configs/synth/$stem.yaml" --split test --limit "$EVAL_LIMIT" "$@"; }
  ev tiny_c --model models/v2m-tiny --out-dir runs/eval-tiny & a=$!
  ev tiny_c_no_motion --model runs/tiny-c-no-motion-ft --out-dir runs/eval-no-motion & b=$!
  wait $a
  wait $b
  ev tiny_c --model models/v2m-tiny --out-dir runs/eval-shuffled --shuffle-video & a=$!
  # Stage 1's model on the same clips: what stage 2 changed.
  ev tiny_c --model runs/tiny-base --out-dir runs/eval-base & b=$!
  wait $a
  wait $b
  # The ceiling: the same metrics on the dataset's own music (what the estimators get right).
  ev tiny_c --generated data/synth-c/clips --out-dir runs/eval-reference
fi

