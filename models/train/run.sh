#!/usr/bin/env bash
# Rebuild the cxr-net model artefacts from scratch (research use only - not a diagnosis).
#
#   models/train/run.sh            full run: train (~45 min on 2 cores), export f32 + int8,
#                                  calibrate (val), write models/cxr-net.toml, evaluate (test),
#                                  write tests/fixtures/parity.json, fill MODEL_CARD.md tables
#   models/train/run.sh --quick    smoke test: 1 epoch on a 400-image subset; writes ONLY under
#                                  models/train/runs/quick/ (never touches the shipped files)
#   options: --out DIR (quick mode output root), --sweep (also redo the input-size comparison),
#            --skip-train (reuse runs/final/best.pt: export ... card only)
#   env: CXR_DATA (data set root, default /work/shared/cxr), CXR_EPOCHS, CXR_SIZE
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
QUICK=0; SWEEP=0; SKIP_TRAIN=0; QOUT="$HERE/runs/quick"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --sweep) SWEEP=1 ;;
    --skip-train) SKIP_TRAIN=1 ;;
    --out) QOUT="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac; shift
done
VENV="$HERE/.venv"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r "$HERE/requirements.txt"
fi
PY="$VENV/bin/python"
export PYTHONHASHSEED=0 OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
SIZE="${CXR_SIZE:-160}"
if [ "$QUICK" = 1 ]; then
  EPOCHS=1; TRAIN_ARGS=(--subset 400 --val-subset 200); CAL_ARGS=(--val-subset 200)
  EVAL_ARGS=(--test-subset 200 --train-subset 400 --reps 50)
  OUT="$QOUT/models"; FIX="$QOUT/fixtures"; WORK="$QOUT/work"; MANREL="models/cxr-net.toml"
  rm -rf "$QOUT"
else
  EPOCHS="${CXR_EPOCHS:-9}"; TRAIN_ARGS=(); CAL_ARGS=(); EVAL_ARGS=(--reps 1000)
  OUT="$ROOT/models"; FIX="$ROOT/tests/fixtures"; WORK="$HERE/runs/final"; MANREL="models/cxr-net.toml"
fi
mkdir -p "$OUT" "$FIX" "$WORK"
cd "$HERE"
if [ "$SWEEP" = 1 ]; then "$PY" size_sweep.py --card "$OUT/card"; fi
if [ "$SKIP_TRAIN" = 0 ]; then
  echo "== train (size $SIZE, $EPOCHS epochs) -> $WORK"; rm -f "$WORK/log.jsonl"
  "$PY" train.py --size "$SIZE" --epochs "$EPOCHS" --out "$WORK" "${TRAIN_ARGS[@]}" 2>&1 | grep --line-buffered -v -E "UserWarning|detach|tl \+=" | tee "$WORK/train.log"
fi
echo "== export f32 + int8 -> $OUT"
"$PY" export.py --ckpt "$WORK/best.pt" --out-dir "$OUT" 2>&1 | grep -v "pre-processing\|pre-process"
echo "== calibrate (val) + manifest"
"$PY" calibrate.py --model-dir "$OUT" --size "$SIZE" "${CAL_ARGS[@]}" > "$WORK/calibrate.log"
echo "== evaluate (test; val shown too)"
"$PY" evaluate.py --model-dir "$OUT" "${EVAL_ARGS[@]}" --cmd "models/train/run.sh $([ $QUICK = 1 ] && echo --quick) (evaluate.py --model-dir models ${EVAL_ARGS[*]})" > "$WORK/evaluate.log"
echo "== parity fixtures"
"$PY" parity.py --model-dir "$OUT" --fixtures "$FIX" --manifest-rel "$MANREL"
if [ "$QUICK" = 0 ]; then
  echo "== model card tables"
  "$PY" make_card.py --card "$ROOT/models/MODEL_CARD.md" --work "$WORK" --results "$OUT/card"
fi
echo "done: $OUT"
