"""Fit temperature + operating thresholds on the VAL split and write the model manifest.

usage: python calibrate.py --model-dir ../ [--val-subset N] [--default int8]
The input (size, preprocessing id, mean, std) comes from MODEL_DIR/export.json, written by
export.py from the checkpoint; without that file, from --size/--preprocess/--mean/--std (defaults
160, cxr-area-v1, 0.5, 0.25). Both given and different: refused (exit 2).
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
from cxr import LABELS  # noqa: E402
from cxr.preprocess import DEVICE_PREPROCESS_IDS  # noqa: E402
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


def write_manifest(path, size, mean, std, temperature, thr, notes, version="1", default="int8",
                   preprocess="cxr-area-v1"):
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
        f'preprocess = "{preprocess}"',
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
    assert t["input"]["preprocess"] == preprocess


def refuse(msg):
    print(f"calibrate.py: {msg}", file=sys.stderr)
    sys.exit(2)


LEGACY_INPUT = dict(size=160, preprocess="cxr-area-v1", mean=0.5, std=0.25)


def model_input(model_dir, given):
    """The input description: export.json beside the files, else the options, else the legacy
    defaults. An option that contradicts export.json is an error, not a silent override."""
    f = Path(model_dir) / "export.json"
    recorded = json.loads(f.read_text()) if f.exists() else {}
    out = {}
    for k, legacy in LEGACY_INPUT.items():
        g, r = given.get(k), recorded.get(k)
        if g is not None and r is not None and g != r:
            refuse(f"--{k} {g} contradicts {f} ({k} = {r}), which export.py "
                   "wrote from the checkpoint; drop the option or re-export")
        out[k] = g if g is not None else (r if r is not None else legacy)
    if out["preprocess"] not in DEVICE_PREPROCESS_IDS:
        refuse(f"preprocessing {out['preprocess']!r} is not one the device implements "
               f"({', '.join(DEVICE_PREPROCESS_IDS)}; src/model/preprocess.rs)")
    return out


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
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--preprocess", default=None)
    ap.add_argument("--mean", type=float, default=None)
    ap.add_argument("--std", type=float, default=None)
    ap.add_argument("--val-subset", type=int, default=None)
    ap.add_argument("--default", default="int8")
    ap.add_argument("--seed", type=int, default=20241130)
    a = ap.parse_args()
    md = Path(a.model_dir)
    inp = model_input(md, dict(size=a.size, preprocess=a.preprocess, mean=a.mean, std=a.std))
    rows = subset_rows(split_rows(load_manifest(), "val"), a.val_subset, a.seed)
    x = clean_tensors(rows, load_images(rows), inp["size"], inp["mean"], inp["std"], inp["preprocess"])
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
    write_manifest(md / "cxr-net.toml", inp["size"], inp["mean"], inp["std"], t, thr, notes,
                   default=a.default, preprocess=inp["preprocess"])
    info = dict(temperature=t, fitted_on=f"val ({len(y)} images), variant {a.default}",
                val_nll_before=nll(zd, y, 1.0), val_nll_after=nll(zd, y, t),
                val_ece_before=ece(softmax(zd, 1.0), y), val_ece_after=ece(p, y),
                thresholds=res, f32_temperature_if_fitted_separately=fit_temperature(z["f32"], y))
    (md / "card").mkdir(exist_ok=True)
    (md / "card" / "calibration.json").write_text(json.dumps(info, indent=1))
    print(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
