"""Score external predictions (e.g. from `cxr-edge classify --json`) exactly like the model card.

usage: python models/train/eval_jsonl.py PRED.jsonl [--manifest models/cxr-net.toml] [--split test]
       [--data DATA_MANIFEST.csv] [--reps 1000] [--card models/card/results.json]
Each JSON line: {"path": "...", "probs": {label: p}, "error": null, ...}. The true label of each
line comes from the data manifest (`--data`, default $CXR_DATA/manifest.csv; your own data: a CSV
with at least `path,label`, optional `split`, `patient` (or `patient_id`), `source`; paths relative to the CSV's
folder), never from the file's name or folder. A line is matched to a manifest row by
  1. its path, resolved, equal to the row's file (the usual case: classify was run on the files);
  2. else the longest run of trailing path components equal to a row's path (a copy of the data
     elsewhere, with the same layout below some folder);
  3. else its file name, when exactly one row has that name.
Lines that match nothing, or two rows equally well, are counted and reported, never guessed.
The class order and thresholds come from the model manifest (`labels`, `[thresholds]`).
Prints the per-class table (AUC, sensitivity/specificity/PPV at the manifest thresholds, 95%
patient-level bootstrap CIs), the confusion matrix, per source AUCs, and the AUC difference to the card.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tomllib
from pathlib import Path, PurePosixPath

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cxr.data import DATA_ROOT  # noqa: E402
from cxr.report import confusion, md_confusion, md_per_class, md_per_source, per_class, per_source  # noqa: E402


def load_data_manifest(path: Path, labels):
    """Rows of a data manifest with `y` (index into the model's labels) and `abspath`."""
    root = path.resolve().parent
    rows = []
    with open(path, newline="") as f:
        for i, r in enumerate(csv.DictReader(f), start=2):
            if not r.get("path") or not r.get("label"):
                sys.exit(f"{path}:{i}: every row needs `path` and `label`")
            if r["label"] not in labels:
                sys.exit(f"{path}:{i}: label {r['label']!r} is not one of the model's labels {labels}")
            r["y"] = labels.index(r["label"])
            r["abspath"] = os.path.normpath(root / r["path"])
            r.setdefault("split", "")
            r["patient_id"] = r.get("patient_id") or r.get("patient") or r["path"]
            r["source"] = r.get("source") or "unknown"
            rows.append(r)
    return rows


class Matcher:
    """Line path -> manifest row (rules 1-3 of the module docstring)."""

    def __init__(self, rows):
        self.by_abs = {r["abspath"]: r for r in rows}
        self.by_suffix: dict = {}
        self.by_name: dict = {}
        for r in rows:
            parts = PurePosixPath(r["path"].replace("\\", "/")).parts
            for k in range(1, len(parts) + 1):
                self.by_suffix.setdefault(parts[-k:], []).append(r)
            self.by_name.setdefault(parts[-1], []).append(r)

    def find(self, path: str):
        """(row or None, why-not)."""
        p = path.replace("\\", "/")
        r = self.by_abs.get(os.path.normpath(os.path.abspath(p)))
        if r is not None:
            return r, None
        parts = PurePosixPath(p).parts
        for k in range(len(parts), 1, -1):
            hit = self.by_suffix.get(parts[-k:])
            if hit:
                return (hit[0], None) if len(hit) == 1 else (None, "ambiguous")
        hit = self.by_name.get(parts[-1]) if parts else None
        if hit:
            return (hit[0], None) if len(hit) == 1 else (None, "ambiguous")
        return None, "unmatched"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pred")
    ap.add_argument("--manifest", default=str(HERE.parent / "cxr-net.toml"))
    ap.add_argument("--split", default="test")
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--card", default=str(HERE.parent / "card" / "results.json"))
    ap.add_argument("--data", default=str(DATA_ROOT / "manifest.csv"),
                    help="data manifest CSV (path,label[,split,patient_id,source])")
    a = ap.parse_args()
    man = tomllib.loads(Path(a.manifest).read_text())
    labels = list(man["labels"])
    thr = man["thresholds"]
    allrows = load_data_manifest(Path(a.data), labels)
    if a.split and not any(r["split"] for r in allrows):
        a.split = ""  # a manifest without splits: score every row
    rows = {r["path"]: r for r in allrows if not a.split or r["split"] == a.split}
    match = Matcher(allrows)
    got, errors, unmatched, ambiguous, other_split = {}, [], 0, 0, 0
    for n, line in enumerate(open(a.pred), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            sys.exit(f"{a.pred}:{n}: not JSON ({e})")
        row, why = match.find(str(d.get("path", "")))
        if row is None:
            if d.get("error"):
                errors.append((d.get("path"), d["error"]))
            elif why == "ambiguous":
                ambiguous += 1
            else:
                unmatched += 1
            continue
        key = row["path"]
        if key not in rows:
            other_split += 1
            continue
        if d.get("error"):
            errors.append((key, d["error"]))
            continue
        probs = d.get("probs") or {}
        try:
            got[key] = np.array([float(probs[l]) for l in labels])
        except (KeyError, TypeError, ValueError):
            sys.exit(f"{a.pred}:{n}: `probs` must give a number for each of {labels}")
    sel = [rows[k] for k in sorted(got)]
    what = a.split or "all"
    missing = len(rows) - len(sel) - sum(1 for k, _ in errors if k in rows)
    print(f"{len(sel)} scored {what} images; {len(errors)} errors; {missing} {what} images without a "
          f"prediction; {unmatched} lines not in the data manifest; {ambiguous} matching several rows; "
          f"{other_split} from other splits")
    for k, e in errors[:10]:
        print(f"  error: {k}: {e}")
    if not sel:
        return 1
    y = np.array([r["y"] for r in sel])
    p = np.stack([got[r["path"]] for r in sel])
    g = np.array([r["patient_id"] for r in sel])
    res = per_class(y, p, thr, g, a.reps, labels=labels)
    print()
    print(md_per_class(res, f"{what}: per class (thresholds from {a.manifest})"))
    print(md_confusion(confusion(y, p), "confusion matrix (argmax)", labels))
    print(md_per_source(per_source(sel, p, thr, 0, labels=labels)))
    cp = Path(a.card)
    if cp.exists() and a.split == "test":
        c = json.loads(cp.read_text())
        dv = c["model"]["toml"]["default_variant"]
        ref = c[f"test_{dv}"]
        print(f"AUC vs card (variant {dv}):")
        ok = True
        for l in labels:
            if ref[l]["auc"] is None or np.isnan(res[l]["auc"]):
                continue
            diff = res[l]["auc"] - ref[l]["auc"]
            ok &= abs(diff) <= 0.005
            print(f"  {l:10s} here {res[l]['auc']:.4f} card {ref[l]['auc']:.4f} diff {diff:+.4f}")
        print("within 0.005 of the card" if ok else "NOT within 0.005 of the card")
    return 0


if __name__ == "__main__":
    sys.exit(main())
