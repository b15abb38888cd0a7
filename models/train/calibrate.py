"""Fit temperature + operating thresholds on the VAL split and write the model manifest.

usage: python calibrate.py --model-dir ../ --size 160 [--val-subset N] [--default int8]
Temperature: minimises val NLL of softmax(logits / T) of the default variant (onnxruntime).
Thresholds (on calibrated val probabilities of the default variant, class positive if p >= t):
  covid     highest t with val sensitivity >= 0.90
  other     highest t with val recall >= 0.99
  pneumonia, normal: Youden's J (sens + spec - 1) maximum on val
Writes MODEL_DIR/cxr-net.toml (sha256 from the files) and MODEL_DIR/card/calibration.json.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cxr import LABELS, PREPROCESS_ID  # noqa: E402
from cxr.data import clean_tensors, load_images, load_manifest, split_rows, subset_rows  # noqa: E402
from cxr.metrics import ece, fit_temperature, nll, op_metrics, softmax  # noqa: E402
from cxr.ortrun import run_logits, session, sha256  # noqa: E402

NOTICE = "Research use only - not a diagnosis."


def floor4(x):
    return math.floor(x * 1e4) / 1e4


def thr_min_sens(p_pos, target):
    s = np.sort(np.asarray(p_pos))[::-1]
    k = int(math.ceil(target * len(s))) - 1
    return floor4(float(s[max(k, 0)]))


def thr_youden(y, p):
    best, bt = -2.0, 0.5
    for t in np.unique(np.round(p, 4)):
        se, sp, _ = op_metrics(y, p, t)
        j = se + sp - 1
        if j > best:
            best, bt = j, float(t)
    return floor4(bt)


def write_manifest(path, size, mean, std, temperature, thr, notes, version="1", default="int8"):
    d = Path(path).parent
    lines = [
        'name = "cxr-net"',
        f'version = "{version}"',
        f'notice = "{NOTICE}"',
        "labels = [" + ", ".join(f'"{l}"' for l in LABELS) + "]",
        f'default_variant = "{default}"',
        "",
        "[input]",
        'name = "image"',
        f"width = {size}",
        f"height = {size}",
        "channels = 1",
        'layout = "NCHW"',
        f'preprocess = "{PREPROCESS_ID}"',
        f"mean = {mean}",
        f"std = {std}",
        "",
        "[outputs]",
        'logits = "logits"',
        'cam = "cam"',
        "# The map at twice the rows and columns from the same weights (src/model/dense.rs); the",
        "# logits stay the file's own.",
        "dense_cam = true",
        "",
        "[calibration]",
        f"temperature = {temperature:.4f}   # probs = softmax(logits / temperature), fitted on val (NLL)",
        "",
        "[thresholds]          # operating points on calibrated probabilities, chosen on val",
    ]
    for l in LABELS:
        lines.append(f"{l} = {thr[l]:.4f}".ljust(22) + f"# {notes[l]}")
    for v, f in (("int8", "cxr-net.int8.onnx"), ("f32", "cxr-net.onnx")):
        lines += ["", f"[variants.{v}]", f'file = "{f}"', f'sha256 = "{sha256(d / f)}"']
    Path(path).write_text("\n".join(lines) + "\n")
    import tomllib
    t = tomllib.loads(Path(path).read_text())
    assert t["labels"] == LABELS and t["input"]["width"] == size


def operating_points(z, y):
    """Temperature (NLL on z, y) and the per-class operating points with their rules, on the
    calibrated probabilities: (t, thresholds, the rule written beside each)."""
    t = fit_temperature(z, y)
    p = softmax(z, t)
    thr, notes = {}, {}
    c = LABELS.index("covid")
    thr["covid"] = thr_min_sens(p[y == c, c], 0.90)
    notes["covid"] = "highest threshold with val sensitivity >= 0.90"
    o = LABELS.index("other")
    thr["other"] = thr_min_sens(p[y == o, o], 0.99)
    notes["other"] = "highest threshold with val recall >= 0.99"
    for l in ("pneumonia", "normal"):
        k = LABELS.index(l)
        thr[l] = thr_youden(y == k, p[:, k])
        notes[l] = "Youden's J maximum on val"
    return t, thr, notes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--mean", type=float, default=0.5)
    ap.add_argument("--std", type=float, default=0.25)
    ap.add_argument("--val-subset", type=int, default=None)
    ap.add_argument("--default", default="int8")
    ap.add_argument("--seed", type=int, default=20241130)
    a = ap.parse_args()
    md = Path(a.model_dir)
    rows = subset_rows(split_rows(load_manifest(), "val"), a.val_subset, a.seed)
    x = clean_tensors(rows, load_images(rows), a.size, a.mean, a.std)
    y = np.array([r["y"] for r in rows])
    files = {"int8": md / "cxr-net.int8.onnx", "f32": md / "cxr-net.onnx"}
    z = {v: run_logits(session(f), x) for v, f in files.items()}
    zd = z[a.default]
    t, thr, notes = operating_points(zd, y)
    p = softmax(zd, t)
    res = {}
    for l in LABELS:
        k = LABELS.index(l)
        se, sp, ppv = op_metrics(y == k, p[:, k], thr[l])
        res[l] = dict(threshold=thr[l], val_sens=se, val_spec=sp, val_ppv=ppv)
    write_manifest(md / "cxr-net.toml", a.size, a.mean, a.std, t, thr, notes, default=a.default)
    info = dict(temperature=t, fitted_on=f"val ({len(y)} images), variant {a.default}",
                val_nll_before=nll(zd, y, 1.0), val_nll_after=nll(zd, y, t),
                val_ece_before=ece(softmax(zd, 1.0), y), val_ece_after=ece(p, y),
                thresholds=res, f32_temperature_if_fitted_separately=fit_temperature(z["f32"], y))
    (md / "card").mkdir(exist_ok=True)
    (md / "card" / "calibration.json").write_text(json.dumps(info, indent=1))
    print(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
