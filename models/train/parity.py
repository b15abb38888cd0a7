"""Fixtures + parity file for the Rust side.

usage: python parity.py --model-dir ../ --fixtures ../../tests/fixtures
1. (re)creates tests/fixtures/samples/: small TEST-split films with permissive licences, stored
   losslessly as 8-bit gray PNG (the PIL decode of the original JPEG), one original JPEG copied
   byte-for-byte (nih-normal-1.jpg, whose PIL decode is nih-normal-1.png), and two synthetic
   images (RGBA and 16-bit gray, CC0) that exercise decode rule 1 and the upsampling branch of
   the area resize; plus LICENSES.md.
2. writes tests/fixtures/parity.json from onnxruntime on the shipped model files.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tomllib
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cxr import LABELS  # noqa: E402
from cxr.data import DATA_ROOT, load_manifest  # noqa: E402
from cxr.metrics import softmax  # noqa: E402
from cxr.ortrun import session  # noqa: E402
from cxr.preprocess import decode, tensor_for  # noqa: E402

STRIDE = 97

CITE = {
    "kermany": "D. Kermany, K. Zhang, M. Goldbaum, Labeled Optical Coherence Tomography (OCT) and Chest X-Ray "
               "Images for Classification, Mendeley Data v2, doi:10.17632/rscbjbr9sj.2; Kermany et al., Cell "
               "172(5):1122 (2018)",
    "ieee8023": "J.P. Cohen, P. Morrison, L. Dao, K. Roth, T.Q. Duong, M. Ghassemi, COVID-19 Image Data Collection: "
                "Prospective Predictions Are the Future, arXiv:2006.11988 (2020); arXiv:2003.11597",
    "nih": "X. Wang et al., ChestX-ray8: Hospital-scale chest X-ray database and benchmarks, CVPR 2017 "
           "(NIH Clinical Center; via T. Ozturk et al., Comput. Biol. Med. 121:103792 (2020))",
}

# (short name, rule) - the smallest TEST file (bytes, then path) satisfying the rule
RULES = [
    ("kermany-normal-1", lambda r: r["source"] == "kermany" and r["label"] == "normal"),
    ("kermany-pneumonia-1", lambda r: r["source"] == "kermany" and r["label"] == "pneumonia"),
    ("ieee8023-covid-1", lambda r: r["source"] == "ieee8023" and r["label"] == "covid"
     and r["license"] in ("CC BY 4.0", "CC BY 3.0", "Apache 2.0", "CC BY")),
    ("nih-normal-1", lambda r: r["source"] == "nih" and r["label"] == "normal"),
    ("nih-pneumonia-1", lambda r: r["source"] == "nih" and r["label"] == "pneumonia"),
    ("ieee8023-other-1", lambda r: r["source"] == "ieee8023" and r["label"] == "other"
     and r["license"] in ("CC BY 4.0", "CC BY 3.0", "Apache 2.0", "CC BY")),
]


def synthetic(samples: Path):
    """Deterministic synthetic images (no data behind them, CC0)."""
    yy, xx = np.mgrid[0:90, 0:120].astype(np.float64)
    r = 128 + 100 * np.sin(xx / 9.0)
    g = 255 * yy / 89
    b = 255 * ((xx + yy) % 17 < 8)
    a = 255 * (xx / 119)
    rgba = np.stack([r, g, b, a], -1).clip(0, 255).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(samples / "synthetic-rgba.png", optimize=True)
    yy, xx = np.mgrid[0:70, 0:200].astype(np.float64)
    v = 32768 + 30000 * np.sin(xx / 13.0) * np.cos(yy / 7.0) + 100 * ((xx * 7 + yy * 3) % 11)
    Image.fromarray(v.clip(0, 65535).astype(np.uint16)).save(samples / "synthetic-gray16.png")
    return [("synthetic-rgba", "synthetic-rgba.png"), ("synthetic-gray16", "synthetic-gray16.png")]


def make_fixtures(fx: Path):
    samples = fx / "samples"
    samples.mkdir(parents=True, exist_ok=True)
    rows = [r for r in load_manifest() if r["split"] == "test"]
    chosen, lic = [], []
    for name, rule in RULES:
        c = sorted([r for r in rows if rule(r)], key=lambda r: (os.path.getsize(r["abspath"]), r["path"]))
        if not c:
            print(f"no test row for {name} (licence rule) - skipped")
            continue
        r = c[0]
        g = decode(r["abspath"])
        assert np.all(g == np.round(g)) and g.max() <= 255
        Image.fromarray(g.astype(np.uint8), "L").save(samples / f"{name}.png", optimize=True)
        chosen.append((name, f"{name}.png"))
        lic.append((f"{name}.png", r))
        if name == "nih-normal-1":
            shutil.copyfile(r["abspath"], samples / "nih-normal-1.jpg")
            lic.append(("nih-normal-1.jpg", r))
    chosen += synthetic(samples)
    md = ["# Licences of the sample images", "",
          "Research/education test fixtures for cxr-edge. Not for diagnosis. `*.png` of real films are the",
          "lossless 8-bit gray decode (PIL) of the data set's JPEG; `nih-normal-1.jpg` is the data set's JPEG",
          "byte-for-byte. All are from the TEST split of `/work/shared/cxr` (see its README).", ""]
    for f, r in lic:
        md += [f"## {f}", "", f"- source: `{r['source']}` (label `{r['label']}`, view `{r['view']}`, "
               f"patient `{r['patient_id']}`)", f"- data set path: `{r['path']}`",
               f"- original origin: `{r['origin']}`", f"- licence: {r['license']}",
               f"- citation: {CITE[r['source']]}", ""]
    md += ["## synthetic-rgba.png, synthetic-gray16.png", "",
           "- generated by `models/train/parity.py` (sine/gradient patterns, no patient data); CC0 1.0", ""]
    (samples / "LICENSES.md").write_text("\n".join(md))
    return chosen


def stats(a):
    a64 = a.astype(np.float64)
    return dict(mean=float(a64.mean()), std=float(a64.std()), min=float(a64.min()), max=float(a64.max()),
                sum=float(a64.sum()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--manifest-rel", default="models/cxr-net.toml")
    a = ap.parse_args()
    md, fx = Path(a.model_dir), Path(a.fixtures)
    man = tomllib.loads((md / "cxr-net.toml").read_text())
    size, mean, std = man["input"]["width"], man["input"]["mean"], man["input"]["std"]
    pre = man["input"]["preprocess"]
    t = man["calibration"]["temperature"]
    chosen = make_fixtures(fx)
    sess = {"f32": session(md / "cxr-net.onnx"), "int8": session(md / "cxr-net.int8.onnx")}
    out = []
    for name, f in chosen:
        g = decode(fx / "samples" / f)
        x = tensor_for(pre, g, size, mean, std)
        flat = x.reshape(-1)
        s = {"file": f"samples/{f}",
             "gray": {"width": int(g.shape[1]), "height": int(g.shape[0]), "mean": float(g.astype(np.float64).mean()),
                      "sum": float(g.astype(np.float64).sum())},
             "tensor": dict(stats(x), stride=STRIDE, values=[float(v) for v in flat[::STRIDE]])}
        for v in ("f32", "int8"):
            lg, cam = sess[v].run(["logits", "cam"], {"image": x})
            p = softmax(lg.astype(np.float64), t)[0]
            d = {"logits": [float(z) for z in lg[0]], "probs": [float(q) for q in p],
                 "top1": LABELS[int(np.argmax(p))]}
            if v == "f32":
                d["cam_shape"] = list(cam.shape)
                d["cam_sum"] = float(cam.astype(np.float64).sum())
            s[v] = d
        out.append(s)
    doc = {"preprocess": pre, "manifest": a.manifest_rel, "width": size, "height": man["input"]["height"],
           "mean": mean, "std": std, "temperature": t, "labels": LABELS,
           "jpeg": {"file": "samples/nih-normal-1.jpg", "decoded_png": "samples/nih-normal-1.png",
                    "note": "PIL/libjpeg decode of the JPEG == the PNG; other decoders may differ by a few levels"},
           "samples": out}
    (fx / "parity.json").write_text(json.dumps(doc, indent=1))
    tot = sum(p.stat().st_size for p in (fx / "samples").iterdir())
    print(f"parity.json: {len(out)} samples; samples dir {tot} bytes")


if __name__ == "__main__":
    main()
