"""Pick the int8 quantisation setting on VAL (never test): top-1 agreement with f32 and AUC diff.

usage: python quant_search.py --model-dir ../ --work runs/quant [--val-subset N]
Tries weight type x calibration method x activation type x (head conv quantised or not), each scored
with onnxruntime defaults and with graph optimisations off (exact QDQ arithmetic); writes
WORK/quant_search.json (copied to ../card/quant_search.json by hand for the card).
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cxr import LABELS  # noqa: E402
from cxr.data import clean_tensors, load_images, load_manifest, split_rows, subset_rows  # noqa: E402
from cxr.metrics import auc  # noqa: E402
from cxr.ortrun import run_logits, session  # noqa: E402
from export import calib_tensors, quantize  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--val-subset", type=int, default=None)
    ap.add_argument("--calib", type=int, default=300)
    ap.add_argument("--seed", type=int, default=20241130)
    ap.add_argument("--configs", default="all")
    a = ap.parse_args()
    md, wk = Path(a.model_dir), Path(a.work)
    wk.mkdir(parents=True, exist_ok=True)
    rows = subset_rows(split_rows(load_manifest(), "val"), a.val_subset, a.seed)
    x = clean_tensors(rows, load_images(rows), 160, 0.5, 0.25)
    y = np.array([r["y"] for r in rows])
    zf = run_logits(session(md / "cxr-net.onnx"), x)
    xc = calib_tensors(a.calib, 160, 0.5, 0.25, a.seed)
    res = []
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    for wt, method, act, exh in itertools.product(["qint8", "quint8"], ["minmax", "percentile"], ["quint8", "qint8"],
                                                  [False, True]):
        name = f"w{wt}-{method}-{act}-{'headf32' if exh else 'headq'}"
        p = wk / f"{name}.onnx"
        try:
            quantize(md / "cxr-net.onnx", p, xc, method, exh, act, wt)
        except Exception as e:  # noqa: BLE001
            print(name, "failed", e)
            continue
        zq = run_logits(session(p), x)
        agree = float((zq.argmax(1) == zf.argmax(1)).mean())
        d = {l: auc(y == k, zq[:, k]) - auc(y == k, zf[:, k]) for k, l in enumerate(LABELS)}
        zn = run_logits(ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"]), x)
        r = dict(name=name, agreement=agree, agreement_no_graph_opt=float((zn.argmax(1) == zf.argmax(1)).mean()), auc_diff=d, max_abs_auc_diff=max(abs(v) for v in d.values()),
                 mean_abs_logit_diff=float(np.abs(zq - zf).mean()), bytes=p.stat().st_size)
        print(json.dumps(r), flush=True)
        res.append(r)
    (wk / "quant_search.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
