#!/usr/bin/env bash
# Reproducibility check: run the pipeline twice with the same seed into two folders and compare
# model bytes (sha256), the training log (minus timings) and the evaluation metrics.
# usage:
#   models/train/repro_check.sh          --quick twice -> runs/repro-{a,b}/, ../card/repro_check.json
#   models/train/repro_check.sh --full   full configuration twice (run.sh --out; CXR_EPOCHS is passed
#                                        through, so give both runs the same value) -> runs/full-{a,b}/,
#                                        ../card/repro_check_full.json. A run folder that already holds
#                                        its results is reused, not re-run. Run b is trained and exported
#                                        only; if its ONNX files are not byte-identical to a's, b is
#                                        also calibrated and evaluated and the test AUCs are compared
#                                        (tolerance 0.005).
# Both runs take their seed from train.py's default (--seed 20241130).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
compare() {  # compare RUN_A RUN_B OUT_JSON LABEL
  "$HERE/.venv/bin/python" - "$@" <<'PY'
import hashlib, json, sys
from pathlib import Path
a, b, out, label = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
TOL = 0.005
def sha(p): return hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None
def strip(o):
    if isinstance(o, dict): return {k: strip(v) for k, v in o.items() if k not in ("eval_s", "epoch_s", "img_s", "elapsed_s", "command", "train_s")}
    if isinstance(o, list): return [strip(v) for v in o]
    return o
def jl(p): return [strip(json.loads(l)) for l in p.read_text().splitlines()]
def js(p): return strip(json.loads(p.read_text())) if p.exists() else None
rep = dict(run_a=str(a), run_b=str(b), tolerance_auc=TOL)
for f in ("cxr-net.onnx", "cxr-net.int8.onnx", "cxr-net.toml"):
    rep[f] = dict(a=sha(a / "models" / f), b=sha(b / "models" / f))
    rep[f]["same"] = (rep[f]["a"] == rep[f]["b"]) if rep[f]["a"] and rep[f]["b"] else None  # None: not written
def weights(p):  # best.pt bytes differ (its "val" entry holds timings); compare the tensors
    import torch
    return torch.load(p, map_location="cpu", weights_only=False)["state"]
wa, wb = weights(a / "work/best.pt"), weights(b / "work/best.pt")
rep["best_pt_weights_same"] = wa.keys() == wb.keys() and all(bool((wa[k] == wb[k]).all()) for k in wa)
la, lb = jl(a / "work/log.jsonl"), jl(b / "work/log.jsonl")
rep["train_log_same"] = la == lb
rep["epochs"] = dict(a=len(la), b=len(lb))
best = lambda L: max(L, key=lambda e: e["val_macro_auc"])
rep["val_auc_best_epoch"] = {r: dict(epoch=best(L)["epoch"], macro=best(L)["val_macro_auc"], **best(L)["val_auc"]) for r, L in (("a", la), ("b", lb))}
ra, rb = js(a / "models/card/results.json"), js(b / "models/card/results.json")
onnx_same = rep["cxr-net.onnx"]["same"] and rep["cxr-net.int8.onnx"]["same"]
rep["b_evaluated"] = rb is not None
rep["results_json_same"] = (ra == rb) if rb is not None else None
pa, pb = sha(a / "fixtures/parity.json"), sha(b / "fixtures/parity.json")
rep["parity_json_same"] = (pa == pb) if pb is not None else None
tk = f"{label}test_auc"
rep[tk + "_a"] = {k: v["auc"] for k, v in ra["test_int8"].items()} if ra else None
rep[tk + "_b"] = {k: v["auc"] for k, v in rb["test_int8"].items()} if rb else None
if ra and rb:
    d = max(abs(rep[tk + "_a"][k] - rep[tk + "_b"][k]) for k in rep[tk + "_a"])
    rep["max_abs_test_auc_diff"] = d
    rep["within_tolerance"] = d <= TOL
elif ra and onnx_same:
    rep[tk + "_b"] = "not evaluated: both ONNX files are byte-identical to run a, so every metric is identical"
    rep["max_abs_test_auc_diff"] = 0.0
    rep["within_tolerance"] = True
else:
    rep["within_tolerance"] = None
checks = [rep[f]["same"] is True for f in ("cxr-net.onnx", "cxr-net.int8.onnx")] + [rep["train_log_same"]]
checks += [v for v in (rep["cxr-net.toml"]["same"], rep["results_json_same"], rep["parity_json_same"]) if v is not None]
rep["all_same"] = all(checks)
out.write_text(json.dumps(rep, indent=1) + "\n"); print(json.dumps(rep, indent=1))
PY
}
if [ "${1:-}" = "--full" ]; then
  A="$HERE/runs/full-a"; B="$HERE/runs/full-b"
  if [ ! -f "$A/models/card/results.json" ]; then "$HERE/run.sh" --out "$A" > "$HERE/runs/full-a.log" 2>&1; fi
  if [ ! -f "$B/models/cxr-net.onnx" ]; then "$HERE/run.sh" --out "$B" --export-only > "$HERE/runs/full-b.log" 2>&1; fi
  if ! cmp -s "$A/models/cxr-net.onnx" "$B/models/cxr-net.onnx" || ! cmp -s "$A/models/cxr-net.int8.onnx" "$B/models/cxr-net.int8.onnx"; then
    if [ ! -f "$B/models/card/results.json" ]; then "$HERE/run.sh" --out "$B" --skip-train >> "$HERE/runs/full-b.log" 2>&1; fi
  fi
  compare "$A" "$B" "$HERE/../card/repro_check_full.json" ""
else
  for r in a b; do "$HERE/run.sh" --quick --out "$HERE/runs/repro-$r" > "$HERE/runs/repro-$r.log" 2>&1; done
  compare "$HERE/runs/repro-a" "$HERE/runs/repro-b" "$HERE/../card/repro_check.json" "quick_"
fi
