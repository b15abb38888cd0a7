#!/usr/bin/env bash
# Reproducibility check: run the --quick pipeline twice with the same seed into two folders and
# compare model bytes (sha256), the training log (minus timings) and the evaluation metrics.
# usage: models/train/repro_check.sh     (writes models/train/runs/repro-{a,b}/ and ../card/repro_check.json)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
for r in a b; do "$HERE/run.sh" --quick --out "$HERE/runs/repro-$r" > "$HERE/runs/repro-$r.log" 2>&1; done
"$HERE/.venv/bin/python" - "$HERE" <<'PY'
import hashlib, json, sys
from pathlib import Path
h = Path(sys.argv[1]); a, b = h / "runs/repro-a", h / "runs/repro-b"
def sha(p): return hashlib.sha256(p.read_bytes()).hexdigest()
def strip(o):
    if isinstance(o, dict): return {k: strip(v) for k, v in o.items() if k not in ("eval_s", "epoch_s", "img_s", "elapsed_s", "command")}
    if isinstance(o, list): return [strip(v) for v in o]
    return o
rep = {}
for f in ("cxr-net.onnx", "cxr-net.int8.onnx", "cxr-net.toml"):
    rep[f] = dict(a=sha(a / "models" / f), b=sha(b / "models" / f)); rep[f]["same"] = rep[f]["a"] == rep[f]["b"]
la = [strip(json.loads(l)) for l in (a / "work/log.jsonl").read_text().splitlines()]
lb = [strip(json.loads(l)) for l in (b / "work/log.jsonl").read_text().splitlines()]
rep["train_log_same"] = la == lb
ra = strip(json.loads((a / "models/card/results.json").read_text()))
rb = strip(json.loads((b / "models/card/results.json").read_text()))
rep["results_json_same"] = ra == rb
rep["parity_json_same"] = sha(a / "fixtures/parity.json") == sha(b / "fixtures/parity.json")
rep["quick_test_auc_a"] = {k: v["auc"] for k, v in ra["test_int8"].items()}
rep["quick_test_auc_b"] = {k: v["auc"] for k, v in rb["test_int8"].items()}
rep["all_same"] = all(v["same"] for k, v in rep.items() if isinstance(v, dict) and "same" in v) and rep["train_log_same"] and rep["results_json_same"] and rep["parity_json_same"]
out = h.parent / "card" / "repro_check.json"
out.write_text(json.dumps(rep, indent=1)); print(json.dumps(rep, indent=1))
PY
