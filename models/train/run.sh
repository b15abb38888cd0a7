#!/usr/bin/env bash
# Rebuild the cxr-net model artefacts from scratch (research use only - not a diagnosis).
#
#   models/train/run.sh --ship     full run: train (14 epochs: ~67 min on 2 cores shared with a Rust
#                                  build, ~40 min if idle), export f32 + int8, calibrate (val), write
#                                  models/cxr-net.toml, evaluate (test), write tests/fixtures/parity.json,
#                                  fill MODEL_CARD.md tables (the rest takes ~10 min)
#   models/train/run.sh --quick    smoke test: 1 epoch on a 400-image subset; writes ONLY under
#                                  models/train/runs/quick/ (never touches the shipped files)
#   models/train/run.sh --out DIR  full run into DIR instead of the shipped files: DIR/models,
#                                  DIR/fixtures, DIR/work; MODEL_CARD.md is not touched
#   A full run without --out refuses to start unless --ship says that overwriting the shipped
#   models/, tests/fixtures/parity.json and MODEL_CARD.md is meant (a researcher evaluating on
#   their own data should never replace the shipped files by accident).
#   options: --ship (write the shipped files: models/, tests/fixtures/, MODEL_CARD.md),
#            --out DIR (output root; with --quick it defaults to runs/quick/ and is wiped first),
#            --sweep (also redo the input-size comparison),
#            --skip-train (reuse the work folder's best.pt: export ... card only; the work folder
#                          is runs/final/, or DIR/work with --out),
#            --export-only (stop after export: no calibrate/evaluate/parity/card),
#            --recipe NAME (train with one of loso.py's recipes, e.g. v1+eq; default v1, the
#                           shipped one: the same options the unseen-source folds used)
#   env: CXR_REQUIREMENTS (lock used when the venv is created: requirements.txt, the default, or
#        requirements-cpu.txt: torch's CPU wheel, no CUDA packages), CXR_DATA (data set root, default /work/shared/cxr), CXR_EPOCHS (default 14), CXR_SIZE,
#        CXR_PHOTOS (1 by default, 0 with --quick): also train on device-path camera photos of the
#        train films (examples/photo_dump.rs, 2 per film, written once to WORK/photos: ~6 min;
#        CXR_P_PHOTO is their share of the training items, 0.3)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
QUICK=0; SWEEP=0; SKIP_TRAIN=0; EXPORT_ONLY=0; QOUT=""; SHIP=0; RECIPE=v1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --ship) SHIP=1 ;;
    --sweep) SWEEP=1 ;;
    --skip-train) SKIP_TRAIN=1 ;;
    --export-only) EXPORT_ONLY=1 ;;
    --recipe) [ $# -ge 2 ] || { echo "--recipe needs a name (loso.py --help lists them)" >&2; exit 2; }
              RECIPE="$2"; shift ;;
    --out) [ $# -ge 2 ] || { echo "--out needs a folder" >&2; exit 2; }
           QOUT="$(mkdir -p "$2" && cd "$2" && pwd)"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac; shift
done
if [ "$QUICK" = 0 ] && [ -z "$QOUT" ] && [ "$SHIP" = 0 ]; then
  echo "run.sh: a full run without --out would overwrite the shipped models/, tests/fixtures/ and" >&2
  echo "MODEL_CARD.md. Use --out DIR for your own run, or --ship if replacing the shipped model is meant." >&2
  exit 2
fi
if [ "$SHIP" = 1 ] && { [ -n "$QOUT" ] || [ "$QUICK" = 1 ]; }; then
  echo "run.sh: --ship writes the shipped files; it cannot be combined with --out or --quick" >&2; exit 2
fi
VENV="$HERE/.venv"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r "$HERE/${CXR_REQUIREMENTS:-requirements.txt}"
fi
PY="$VENV/bin/python"
export PYTHONHASHSEED=0 OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
# The recipe's training options, from the one table the folds use (an unknown name: exit 2).
RECIPE_TEXT="$(cd "$HERE" && "$PY" -c '
import sys; from loso import RECIPES
r = sys.argv[1]
if r not in RECIPES: sys.exit(f"run.sh: unknown recipe {r!r}; known: {chr(44).join(RECIPES)}")
sys.stdout.write("".join(a + chr(10) for a in RECIPES[r]))' "$RECIPE")" || exit 2
RECIPE_ARGS=()
[ -z "$RECIPE_TEXT" ] || mapfile -t RECIPE_ARGS <<< "$RECIPE_TEXT"
SIZE="${CXR_SIZE:-160}"
DATA="${CXR_DATA:-/work/shared/cxr}"
SHIPPED=0
if [ "$QUICK" = 1 ]; then
  QOUT="${QOUT:-$HERE/runs/quick}"
  EPOCHS=1; TRAIN_ARGS=(--subset 400 --val-subset 200); CAL_ARGS=(--val-subset 200)
  EVAL_ARGS=(--test-subset 200 --train-subset 400 --reps 50)
  OUT="$QOUT/models"; FIX="$QOUT/fixtures"; WORK="$QOUT/work"; MANREL="models/cxr-net.toml"
  rm -rf "$QOUT"
else
  EPOCHS="${CXR_EPOCHS:-14}"; TRAIN_ARGS=(); CAL_ARGS=(); EVAL_ARGS=(--reps 1000)
  MANREL="models/cxr-net.toml"
  if [ -n "$QOUT" ]; then
    OUT="$QOUT/models"; FIX="$QOUT/fixtures"; WORK="$QOUT/work"
  else
    SHIPPED=1; OUT="$ROOT/models"; FIX="$ROOT/tests/fixtures"; WORK="$HERE/runs/final"
  fi
fi
mkdir -p "$OUT" "$FIX" "$WORK"
cd "$HERE"
if [ "$SWEEP" = 1 ]; then "$PY" size_sweep.py --card "$OUT/card"; fi
PHOTO_ARGS=()
if [ "$SKIP_TRAIN" = 0 ] && [ "${CXR_PHOTOS:-$((1 - QUICK))}" = 1 ]; then
  if [ ! -s "$WORK/photos/photos-1.csv" ]; then
    echo "== device-path photos of the train split -> $WORK/photos"
    CARGO="$(command -v cargo || echo "$HOME/.cargo/bin/cargo")"
    (cd "$ROOT" && "$CARGO" build -q --release --example photo_dump)
    rm -rf "$WORK/photos.tmp"; mkdir -p "$WORK/photos.tmp"; pids=()
    for k in 0 1; do
      "$ROOT/target/release/examples/photo_dump" "$DATA" "$WORK/photos.tmp" --split train \
        --size "$SIZE" --shard "$k/2" & pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    rm -rf "$WORK/photos"; mv "$WORK/photos.tmp" "$WORK/photos"
  fi
  PHOTO_ARGS=(--photos "$WORK/photos" --p-photo "${CXR_P_PHOTO:-0.3}")
fi
if [ "$SKIP_TRAIN" = 0 ]; then
  echo "== train (size $SIZE, $EPOCHS epochs, recipe $RECIPE) -> $WORK"; rm -f "$WORK/log.jsonl"
  "$PY" train.py --size "$SIZE" --epochs "$EPOCHS" --out "$WORK" "${TRAIN_ARGS[@]}" "${PHOTO_ARGS[@]}" "${RECIPE_ARGS[@]}" 2>&1 | grep --line-buffered -v -E "UserWarning|detach|tl \+=" | tee "$WORK/train.log"
fi
echo "== export f32 + int8 -> $OUT"
"$PY" export.py --ckpt "$WORK/best.pt" --out-dir "$OUT" 2>&1 | grep -v "pre-processing\|pre-process"
if [ "$EXPORT_ONLY" = 1 ]; then echo "done (export only): $OUT"; exit 0; fi
echo "== calibrate (val) + manifest"
"$PY" calibrate.py --model-dir "$OUT" "${CAL_ARGS[@]}" > "$WORK/calibrate.log"
echo "== evaluate (test; val shown too)"
"$PY" evaluate.py --model-dir "$OUT" "${EVAL_ARGS[@]}" --cmd "models/train/run.sh $([ $QUICK = 1 ] && echo --quick) (evaluate.py --model-dir models ${EVAL_ARGS[*]})" > "$WORK/evaluate.log"
echo "== parity fixtures"
"$PY" parity.py --model-dir "$OUT" --fixtures "$FIX" --manifest-rel "$MANREL"
if [ "$SHIPPED" = 1 ]; then
  echo "== model card tables"
  "$PY" make_card.py --card "$ROOT/models/MODEL_CARD.md" --work "$WORK" --results "$OUT/card"
fi
echo "done: $OUT"
