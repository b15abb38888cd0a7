"""tract (cxr-edge bench) against onnxruntime on the very same ONNX files, same input tensor, same
thread counts; prints each side's median inference time and the tract/onnxruntime ratio.
Research use only - not a diagnosis. Run through `scripts/bench-ort` (it picks the venv).

Both sides are timed in alternating rounds inside one invocation (tract, then onnxruntime, per
variant, `--rounds` times), so a machine shared with other work slows both alike; the ratio is
the median of the per-round ratios, with its range. Three comparisons per variant and N:
  latency, 1 thread     tract 1 thread           vs onnxruntime intra_op_num_threads=1
  N films at once       tract N threads x 1 film  vs N onnxruntime 1-thread sessions in N threads
                        (ms per film: throughput, what `classify -j N` does)
  one film, N threads   tract 1 thread           vs onnxruntime intra_op_num_threads=N
                        (tract-onnx 0.23 cannot spread one inference over threads without
                        tract-linalg's multithread-mm feature, which it does not forward)
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "models" / "train"))
from cxr.preprocess import preprocess_file  # noqa: E402


def ort_session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def q(xs, p):
    xs = sorted(xs)
    return xs[round((len(xs) - 1) * p)]


def time_ort_latency(path, threads, x, runs):
    s = ort_session(path, threads)
    feed = {"image": x}
    s.run(None, feed)
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        s.run(None, feed)
        ts.append((time.perf_counter() - t) * 1e3)
    return ts


def time_ort_parallel(path, n, x, runs):
    """n 1-thread sessions, one per Python thread (onnxruntime releases the GIL in run)."""
    sessions = [ort_session(path, 1) for _ in range(n)]
    feed = {"image": x}
    for s in sessions:
        s.run(None, feed)
    ts = []
    for _ in range(runs):
        th = [threading.Thread(target=s.run, args=(None, feed)) for s in sessions]
        t = time.perf_counter()
        for h in th:
            h.start()
        for h in th:
            h.join()
        ts.append((time.perf_counter() - t) * 1e3 / n)
    return ts


def tract_inference(binary, manifest, variant, threads, runs):
    cmd = [str(binary), "bench", "--json", "--only", "inference", "--model", str(manifest),
           "--variant", variant, "--threads", ",".join(map(str, threads)), "--runs", str(runs),
           "--preview-analyses", "0"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {r["threads"]: r for r in rows if r["stage"] == "inference"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "cxr-edge"))
    ap.add_argument("--model", default=str(ROOT / "models" / "cxr-net.toml"))
    ap.add_argument("--variants", help="comma-separated (default: all in the manifest)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sample", default=str(ROOT / "tests" / "fixtures" / "samples" / "nih-normal-1.jpg"),
                    help="film for the input tensor (the one `cxr-edge bench` uses)")
    ap.add_argument("--json", action="store_true", help="one JSON object per comparison")
    a = ap.parse_args()
    manifest_path = Path(a.model)
    m = tomllib.loads(manifest_path.read_text())
    variants = a.variants.split(",") if a.variants else list(m["variants"])
    threads = [int(t) for t in a.threads.split(",")]
    inp = m["input"]
    x = preprocess_file(a.sample, inp["width"], inp["mean"], inp["std"]).astype(np.float32)
    x = x.reshape(1, 1, inp["height"], inp["width"])

    results = []
    for v in variants:
        path = manifest_path.parent / m["variants"][v]["file"]
        per = {}  # key -> list of (tract ms, ort ms) per round
        for _ in range(a.rounds):
            tr = tract_inference(a.bin, manifest_path, v, threads, a.runs)
            for n in threads:
                t1 = tr[1]["median_ms"] if 1 in tr else None
                if n == 1:
                    o = statistics.median(time_ort_latency(path, 1, x, a.runs))
                    per.setdefault(("latency, 1 thread", 1), []).append((t1, o))
                    continue
                o_par = statistics.median(time_ort_parallel(path, n, x, a.runs))
                per.setdefault((f"{n} films at once, ms/film", n), []).append(
                    (tr[n]["median_ms"], o_par))
                o_lat = statistics.median(time_ort_latency(path, n, x, a.runs))
                if t1 is not None:
                    per.setdefault((f"one film, {n} threads", n), []).append((t1, o_lat))
        for (what, n), pairs in per.items():
            ratios = [t / o for t, o in pairs]
            results.append(dict(
                variant=v, file=str(path.name), comparison=what, threads=n,
                tract_ms=statistics.median(t for t, _ in pairs),
                ort_ms=statistics.median(o for _, o in pairs),
                ratio=statistics.median(ratios), ratio_min=min(ratios), ratio_max=max(ratios),
                rounds=len(pairs), runs=a.runs))
    if a.json:
        for r in results:
            print(json.dumps(r))
        return
    print(f"tract (cxr-edge bench) vs onnxruntime {ort.__version__}, {a.rounds} alternating rounds "
          f"x {a.runs} runs, median per round, same files and input ({Path(a.sample).name})")
    print("Research use only - not a diagnosis.")
    w = max([7] + [len(r["variant"]) for r in results])  # `int8-qlinear` needs 12
    print(f"{'MODEL':<{w}} {'COMPARISON':<28} {'tract ms':>9} {'ORT ms':>8} {'tract/ORT':>10} {'range':>13}")
    for r in results:
        print(f"{r['variant']:<{w}} {r['comparison']:<28} {r['tract_ms']:>9.2f} {r['ort_ms']:>8.2f} "
              f"{r['ratio']:>10.2f} {r['ratio_min']:>6.2f}-{r['ratio_max']:<6.2f}")


if __name__ == "__main__":
    main()
