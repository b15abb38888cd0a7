"""Cheap input-size comparison: short training at each size (same subset/seed/epochs) + ORT latency.

usage: python size_sweep.py --sizes 160 192 --epochs 2 --subset 2000 --val-subset 500 --work runs/sweep
Writes ../card/size_sweep.json (val macro AUC after the short run, train img/s, ORT 1-thread latency
f32 and int8 of a random-init export, MACs, params).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cxr.model import count_macs  # noqa: E402
from cxr.ortrun import session  # noqa: E402


def latency(path, size, reps=50):
    s = session(path, threads=1)
    x = np.random.default_rng(0).standard_normal((1, 1, size, size)).astype(np.float32)
    for _ in range(5):
        s.run(["logits"], {"image": x})
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        s.run(["logits", "cam"], {"image": x})
        ts.append(time.perf_counter() - t)
    return float(np.median(ts) * 1000)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[160, 192])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--subset", type=int, default=2000)
    ap.add_argument("--val-subset", type=int, default=500)
    ap.add_argument("--work", default=str(HERE / "runs" / "sweep"))
    ap.add_argument("--card", default=str(HERE.parent / "card"))
    a = ap.parse_args()
    res = {}
    py = sys.executable
    for s in a.sizes:
        out = Path(a.work) / f"s{s}"
        subprocess.run([py, str(HERE / "train.py"), "--size", str(s), "--epochs", str(a.epochs), "--subset",
                        str(a.subset), "--val-subset", str(a.val_subset), "--out", str(out)], check=True)
        log = [json.loads(l) for l in open(out / "log.jsonl")]
        subprocess.run([py, str(HERE / "export.py"), "--ckpt", str(out / "last.pt"), "--calib", "64",
                        "--out-dir", str(out)], check=True, capture_output=True)
        macs, params, fs = count_macs(s)
        res[s] = dict(val_auc_last=log[-1]["val_auc"], val_macro_auc_last=log[-1]["val_macro_auc"],
                      val_acc_last=log[-1]["val_acc"], train_img_s=float(np.mean([l["img_s"] for l in log])),
                      ort_f32_ms_1thread=latency(out / "cxr-net.onnx", s),
                      ort_int8_ms_1thread=latency(out / "cxr-net.int8.onnx", s),
                      macs=macs, params=params, cam=[fs, fs])
        print(json.dumps({s: res[s]}), flush=True)
    info = dict(setup=vars(a), results=res,
                note="machine shared with a concurrent Rust build: img/s and latencies are noisy")
    Path(a.card).mkdir(parents=True, exist_ok=True)
    (Path(a.card) / "size_sweep.json").write_text(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
