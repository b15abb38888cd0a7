"""Score external predictions (e.g. from `cxr-edge classify --json`) exactly like the model card.

usage: python models/train/eval_jsonl.py PRED.jsonl [--manifest models/cxr-net.toml] [--split test]
       [--reps 1000] [--card models/card/results.json]
Each JSON line: {"path": ".../images/<label>/<file>.jpg", "label": "...", "probs": {label: p}, "error": null}.
Rows are matched to the data manifest by the path suffix `images/<label>/<file>.jpg`. Prints the
per-class table (AUC, sensitivity/specificity/PPV at the manifest thresholds, 95% patient-level
bootstrap CIs), the confusion matrix, per source AUCs, and the AUC difference to the card.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cxr import LABELS  # noqa: E402
from cxr.data import load_manifest  # noqa: E402
from cxr.report import confusion, md_confusion, md_per_class, md_per_source, per_class, per_source  # noqa: E402

SUFFIX = re.compile(r"(images/[^/]+/[^/]+\.jpe?g)$", re.I)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pred")
    ap.add_argument("--manifest", default=str(HERE.parent / "cxr-net.toml"))
    ap.add_argument("--split", default="test")
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--card", default=str(HERE.parent / "card" / "results.json"))
    a = ap.parse_args()
    man = tomllib.loads(Path(a.manifest).read_text())
    thr = man["thresholds"]
    rows = {r["path"]: r for r in load_manifest() if r["split"] == a.split}
    got, errors, unmatched, other_split = {}, [], 0, 0
    allrows = {r["path"]: r for r in load_manifest()}
    for line in open(a.pred):
        line = line.strip()
        if not line:
            continue
        d = json.loads(line)
        m = SUFFIX.search(str(d.get("path", "")).replace("\\", "/"))
        if d.get("error") and not (m and m.group(1) in rows):
            errors.append((d.get("path"), d["error"]))
            continue
        if not m:
            unmatched += 1
            continue
        key = m.group(1)
        if key not in rows:
            if key in allrows:
                other_split += 1
            else:
                unmatched += 1
            continue
        if d.get("error"):
            errors.append((key, d["error"]))
            continue
        got[key] = np.array([float(d["probs"][l]) for l in LABELS])
    sel = [rows[k] for k in sorted(got)]
    missing = len(rows) - len(sel) - sum(1 for k, _ in errors if k in rows)
    print(f"{len(sel)} scored {a.split} images; {len(errors)} errors; {missing} {a.split} images without a "
          f"prediction; {unmatched} lines not in the data manifest; {other_split} from other splits")
    for k, e in errors[:10]:
        print(f"  error: {k}: {e}")
    if not sel:
        return 1
    y = np.array([r["y"] for r in sel])
    p = np.stack([got[r["path"]] for r in sel])
    g = np.array([r["patient_id"] for r in sel])
    res = per_class(y, p, thr, g, a.reps)
    print()
    print(md_per_class(res, f"{a.split}: per class (thresholds from {a.manifest})"))
    print(md_confusion(confusion(y, p), "confusion matrix (argmax)"))
    print(md_per_source(per_source(sel, p, thr, 0)))
    cp = Path(a.card)
    if cp.exists() and a.split == "test":
        c = json.loads(cp.read_text())
        dv = c["model"]["toml"]["default_variant"]
        ref = c[f"test_{dv}"]
        print(f"AUC vs card (variant {dv}):")
        ok = True
        for l in LABELS:
            if ref[l]["auc"] is None or np.isnan(res[l]["auc"]):
                continue
            diff = res[l]["auc"] - ref[l]["auc"]
            ok &= abs(diff) <= 0.005
            print(f"  {l:10s} here {res[l]['auc']:.4f} card {ref[l]['auc']:.4f} diff {diff:+.4f}")
        print("within 0.005 of the card" if ok else "NOT within 0.005 of the card")
    return 0


if __name__ == "__main__":
    sys.exit(main())
