"""tests/fixtures/preprocess-eq-v2.json: "cxr-eq-v2" tensors of two sample films from the Python
reference, for the Rust parity test (tests/parity.rs) before any model uses that preprocessing.

usage: python eq_fixture.py [--fixtures ../../tests/fixtures]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cxr.preprocess import decode, tensor_for  # noqa: E402

FILES = ["samples/kermany-normal-1.png", "samples/synthetic-gray16.png", "samples/nih-pneumonia-1.png"]
SIZE, MEAN, STD, STRIDE = 160, 0.5, 0.29, 97


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", default=str(HERE.parent.parent / "tests" / "fixtures"))
    a = ap.parse_args()
    fx = Path(a.fixtures)
    out = []
    for f in FILES:
        t = tensor_for("cxr-eq-v2", decode(fx / f), SIZE, MEAN, STD).ravel()
        out.append({"file": f, "mean": float(t.mean(dtype=np.float64)), "std": float(t.std(dtype=np.float64)),
                    "min": float(t.min()), "max": float(t.max()), "stride": STRIDE,
                    "values": [float(v) for v in t[::STRIDE]]})
    doc = {"preprocess": "cxr-eq-v2", "width": SIZE, "height": SIZE, "mean": MEAN, "std": STD, "samples": out}
    (fx / "preprocess-eq-v2.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {fx / 'preprocess-eq-v2.json'}")


if __name__ == "__main__":
    main()
