"""Do two runs of `cxr-edge classify --json` on the same films agree (issue 22's yardstick for a
new integer path): top-1 agreement, the largest probability difference, and each class's
one-vs-rest AUC for both runs with the change. True labels come from the data manifest, never
from a file's name. Research use only - not a diagnosis.

usage: python models/eval/int8_agreement.py REF.jsonl NEW.jsonl [--data DATA/manifest.csv]
       [--split test]
  REF: the reference run (e.g. `--variant int8`, the QDQ file); NEW: the run checked against it
  (e.g. `--variant int8-qlinear`). Lines are matched by their resolved path; a line whose film
  is not in the data manifest's split, or that carries an error, is counted and left out.
Exit status: 0 when top-1 agreement >= 0.995 and every class's AUC moved by <= 0.001, else 1.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from cxr.metrics import auc  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def read(path: Path) -> dict[str, dict]:
    out = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        out[str(Path(r["path"]).resolve())] = r
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("ref", type=Path)
    ap.add_argument("new", type=Path)
    default_data = Path(os.environ.get("CXR_DATA", ROOT.parent / "shared" / "cxr")) / "manifest.csv"
    ap.add_argument("--data", type=Path, default=default_data)
    ap.add_argument("--split", default="test")
    a = ap.parse_args()
    rows = {}
    with a.data.open() as f:
        for row in csv.DictReader(f):
            if row.get("split", a.split) == a.split:
                rows[str((a.data.parent / row["path"]).resolve())] = row["label"]
    ref, new = read(a.ref), read(a.new)
    keys = [k for k in ref if k in new and k in rows
            and ref[k].get("error") is None and new[k].get("error") is None]
    left = len(set(ref) | set(new)) - len(keys)
    labels = list(ref[keys[0]]["probs"].keys())
    p_ref = np.array([[ref[k]["probs"][c] for c in labels] for k in keys])
    p_new = np.array([[new[k]["probs"][c] for c in labels] for k in keys])
    y = np.array([labels.index(rows[k]) for k in keys])
    agree = float((p_ref.argmax(1) == p_new.argmax(1)).mean())
    worst = float(np.abs(p_ref - p_new).max())
    print(f"films: {len(keys)} compared ({left} left out: not in split '{a.split}', missing or errors)")
    print(f"top-1 agreement: {agree:.4f} ({int((p_ref.argmax(1) != p_new.argmax(1)).sum())} differ)")
    print(f"largest probability difference: {worst:.5f}")
    print("| class | AUC ref | AUC new | change |")
    print("|---|---|---|---|")
    moved = 0.0
    for i, c in enumerate(labels):
        a_ref, a_new = auc(y == i, p_ref[:, i]), auc(y == i, p_new[:, i])
        moved = max(moved, abs(a_new - a_ref))
        print(f"| {c} | {a_ref:.4f} | {a_new:.4f} | {a_new - a_ref:+.4f} |")
    ok = agree >= 0.995 and moved <= 0.001
    print(f"within issue 22's agreement (top-1 >= 0.995, |AUC change| <= 0.001): {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
