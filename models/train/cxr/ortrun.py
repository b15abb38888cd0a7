"""onnxruntime helpers (CPU, fixed batch 1)."""
from __future__ import annotations

import hashlib

import numpy as np


def session(path, threads=1):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    # A path, or a serialised model (bytes) such as a rewritten graph.
    src = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def run_logits(sess, xs, want_cam=False):
    zs, cams = [], []
    for i in range(len(xs)):
        out = sess.run(["logits", "cam"] if want_cam else ["logits"], {"image": xs[i:i + 1]})
        zs.append(out[0][0])
        if want_cam:
            cams.append(out[1][0])
    z = np.stack(zs).astype(np.float64)
    return (z, np.stack(cams)) if want_cam else z


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()
