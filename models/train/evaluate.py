"""Evaluation for MODEL_CARD.md (test split for the report, val shown too).

usage: python evaluate.py --model-dir ../ [--reps 1000] [--test-subset N] [--card-dir ../card]
Needs only the shipped files (cxr-net.toml, cxr-net.onnx, cxr-net.int8.onnx). Main tables use
the manifest's default variant (int8) with the manifest temperature and thresholds.
Writes CARD/results.json, CARD/results.md (tables copied into MODEL_CARD.md), CARD/cam_montage.png.
Sections: per class test metrics with 95% patient-level bootstrap CIs; confusion matrix; ECE
before/after temperature; per source; val; int8 vs f32; robustness (camera-style augmentation,
fixed seed); shortcut audit (linear probe on pooled features predicting the source) + CAM montage.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cxr import LABELS  # noqa: E402
from cxr.augment import camera_augment  # noqa: E402
from cxr.data import load_images, load_manifest, split_rows, subset_rows  # noqa: E402
from cxr.metrics import auc, softmax  # noqa: E402
from cxr.ortrun import run_logits, session  # noqa: E402
from cxr.preprocess import tensor_for  # noqa: E402
from cxr.report import (confusion, ece_pair, md_confusion, md_per_class, md_per_source,  # noqa: E402
                        per_class, per_source, fmt)

ROBUST_SEED = 4242


def tensors(imgs, pre, size, mean, std):
    return np.concatenate([tensor_for(pre, im.astype(np.float32), size, mean, std) for im in imgs], 0)


def features_session(f32_path):
    """The f32 graph plus a `features` output (GAP of the last ReLU) - analysis only, never shipped."""
    m = onnx.load(str(f32_path))
    last = [n for n in m.graph.node if n.op_type == "Relu"][-1].output[0]
    m.graph.node.extend([helper.make_node("GlobalAveragePool", [last], ["fgap"]),
                         helper.make_node("Flatten", ["fgap"], ["features"], axis=1)])
    m.graph.output.extend([helper.make_tensor_value_info("features", onnx.TensorProto.FLOAT, None)])
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def feats(sess, xs):
    return np.stack([sess.run(["features"], {"image": xs[i:i + 1]})[0][0] for i in range(len(xs))])


def probe(ftr, str_, fte, ste):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    classes, counts = np.unique(str_, return_counts=True)
    if len(classes) < 2:
        return None
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=1.0))
    clf.fit(ftr, str_)
    acc = float((clf.predict(fte) == ste).mean())
    maj = classes[np.argmax(counts)]
    base = float((ste == maj).mean())
    from sklearn.metrics import balanced_accuracy_score
    return dict(classes=classes.tolist(), n_train=int(len(str_)), n_test=int(len(ste)), accuracy=acc,
                majority_baseline=base, majority_class=str(maj),
                balanced_accuracy=float(balanced_accuracy_score(ste, clf.predict(fte))),
                balanced_baseline=float(1.0 / len(classes)))


def jet(v):
    v = np.clip(v, 0, 1)
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return np.stack([r, g, b], -1)


def montage(rows, xs, cams, probs, mean, std, path, tile=160):
    from PIL import Image, ImageDraw
    picks = []
    want = [("c19rad", "covid", 2), ("ieee8023", "covid", 2), ("kermany", "pneumonia", 2), ("nih", "pneumonia", 2),
            ("ieee8023", "pneumonia", 1), ("c19rad", "normal", 2), ("kermany", "normal", 2), ("nih", "normal", 2),
            ("ieee8023", "other", 1)]
    for s, l, n in want:
        idx = [i for i, r in enumerate(rows) if r["source"] == s and r["label"] == l]
        rng = np.random.default_rng(len(picks) + 7)
        picks += sorted(rng.choice(idx, size=min(n, len(idx)), replace=False).tolist()) if idx else []
    canvas = Image.new("RGB", (4 * tile, 4 * (tile + 14)), (0, 0, 0))
    d = ImageDraw.Draw(canvas)
    for j, i in enumerate(picks[:16]):
        g = np.clip((xs[i, 0] * std + mean), 0, 1)
        k = int(np.argmax(probs[i]))
        c = cams[i, k]
        c = (c - c.min()) / (c.max() - c.min() + 1e-9)
        cu = np.asarray(Image.fromarray((c * 255).astype(np.uint8)).resize(g.shape[::-1], Image.Resampling.BILINEAR),
                        dtype=np.float32) / 255
        rgb = 0.55 * np.repeat(g[..., None], 3, -1) + 0.45 * jet(cu)
        im = Image.fromarray((rgb * 255).astype(np.uint8)).resize((tile, tile))
        x0, y0 = (j % 4) * tile, (j // 4) * (tile + 14)
        canvas.paste(im, (x0, y0 + 14))
        r = rows[i]
        d.text((x0 + 2, y0 + 1), f"{r['source'][:7]} {r['label'][:4]}->{LABELS[k][:4]} {probs[i, k]:.2f}",
               fill=(255, 255, 255))
    canvas.quantize(colors=256).save(path, optimize=True)  # palette PNG keeps it < 500 KB
    return [rows[i]["path"] for i in picks[:16]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--card-dir", default=None)
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--test-subset", type=int, default=None)
    ap.add_argument("--train-subset", type=int, default=None, help="probe training rows (default all)")
    ap.add_argument("--seed", type=int, default=20241130)
    ap.add_argument("--cmd", default=None, help="command line to print in the tables")
    a = ap.parse_args()
    t0 = time.time()
    md = Path(a.model_dir)
    card = Path(a.card_dir) if a.card_dir else md / "card"
    card.mkdir(parents=True, exist_ok=True)
    man = tomllib.loads((md / "cxr-net.toml").read_text())
    size, mean, std = man["input"]["width"], man["input"]["mean"], man["input"]["std"]
    pre = man["input"]["preprocess"]
    T = man["calibration"]["temperature"]
    thr = man["thresholds"]
    dv = man["default_variant"]
    files = {v: md / man["variants"][v]["file"] for v in man["variants"]}
    sess = {v: session(f) for v, f in files.items()}
    rows = load_manifest()
    te = subset_rows(split_rows(rows, "test"), a.test_subset, a.seed)
    va = subset_rows(split_rows(rows, "val"), a.test_subset, a.seed)
    tr = subset_rows(split_rows(rows, "train"), a.train_subset, a.seed)
    te_imgs, va_imgs = load_images(te), load_images(va)
    xte, xva = tensors(te_imgs, pre, size, mean, std), tensors(va_imgs, pre, size, mean, std)
    yte, yva = np.array([r["y"] for r in te]), np.array([r["y"] for r in va])
    gte, gva = np.array([r["patient_id"] for r in te]), np.array([r["patient_id"] for r in va])
    R = {"model": {"toml": man, "size_bytes": {v: f.stat().st_size for v, f in files.items()}},
         "command": a.cmd or " ".join(sys.argv)}
    z, cams = {}, {}
    for v in files:
        z[(v, "test")], cams[v] = run_logits(sess[v], xte, want_cam=True)
        z[(v, "val")] = run_logits(sess[v], xva)
    P = {k: softmax(v, T) for k, v in z.items()}
    md_out = [f"Tables below produced by: `{R['command']}` (all sections of `evaluate.py`).", ""]

    # main test tables (default variant) + f32
    for v in [dv] + [x for x in files if x != dv]:
        res = per_class(yte, P[(v, "test")], thr, gte, a.reps)
        R[f"test_{v}"] = res
        R[f"test_{v}_confusion"] = confusion(yte, P[(v, "test")])
        R[f"test_{v}_ece"] = ece_pair(z[(v, "test")], yte, T)
        R[f"test_{v}_acc"] = float((P[(v, "test")].argmax(1) == yte).mean())
    R["test_other_recall"] = R[f"test_{dv}"]["other"]["sens"]
    md_out += [f"### Test split ({len(te)} images), variant `{dv}` (default), T = {T}, manifest thresholds", "",
               md_per_class(R[f"test_{dv}"]), md_confusion(R[f"test_{dv}_confusion"], "Confusion matrix (argmax), test"),
               f"Top-1 accuracy {R[f'test_{dv}_acc']:.3f}. ECE (15 bins, top label): before temperature "
               f"{R[f'test_{dv}_ece']['ece_before']:.4f}, after {R[f'test_{dv}_ece']['ece_after']:.4f}.", ""]
    # per source
    R[f"test_{dv}_per_source"] = per_source(te, P[(dv, "test")], thr, a.reps)
    md_out += [f"### Test per source (one-vs-rest inside each source; variant `{dv}`)", "",
               md_per_source(R[f"test_{dv}_per_source"])]
    # val
    R[f"val_{dv}"] = per_class(yva, P[(dv, "val")], thr, gva, a.reps)
    R[f"val_{dv}_confusion"] = confusion(yva, P[(dv, "val")])
    R[f"val_{dv}_ece"] = ece_pair(z[(dv, "val")], yva, T)
    R[f"val_{dv}_per_source"] = per_source(va, P[(dv, "val")], thr, 0)
    md_out += [f"### Val split ({len(va)} images; model selection, temperature and thresholds were fitted here)", "",
               md_per_class(R[f"val_{dv}"]), md_confusion(R[f"val_{dv}_confusion"], "Confusion matrix (argmax), val"),
               f"ECE before {R[f'val_{dv}_ece']['ece_before']:.4f}, after {R[f'val_{dv}_ece']['ece_after']:.4f}.", "",
               "Val per source (no CIs):", "", md_per_source(R[f"val_{dv}_per_source"])]
    # int8 vs f32
    if "int8" in files and "f32" in files:
        q = {}
        for sp, yy in (("test", yte), ("val", yva)):
            agree = float((z[("int8", sp)].argmax(1) == z[("f32", sp)].argmax(1)).mean())
            d = {l: dict(auc_int8=auc(yy == k, P[("int8", sp)][:, k]), auc_f32=auc(yy == k, P[("f32", sp)][:, k]))
                 for k, l in enumerate(LABELS)}
            for l in LABELS:
                d[l]["diff"] = d[l]["auc_int8"] - d[l]["auc_f32"]
            q[sp] = dict(top1_agreement=agree, per_class=d,
                         max_abs_logit_diff=float(np.abs(z[("int8", sp)] - z[("f32", sp)]).max()),
                         mean_abs_prob_diff=float(np.abs(P[("int8", sp)] - P[("f32", sp)]).mean()))
        # exact QDQ arithmetic (onnxruntime with graph optimisations off: DQ -> float conv -> Q)
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        zn = run_logits(ort.InferenceSession(str(files["int8"]), so, providers=["CPUExecutionProvider"]), xte)
        pn = softmax(zn, T)
        q["test (int8 via ORT without graph optimisations)"] = dict(
            top1_agreement=float((zn.argmax(1) == z[("f32", "test")].argmax(1)).mean()),
            per_class={l: dict(auc_int8=auc(yte == k, pn[:, k]), auc_f32=auc(yte == k, P[("f32", "test")][:, k]),
                               diff=auc(yte == k, pn[:, k]) - auc(yte == k, P[("f32", "test")][:, k]))
                       for k, l in enumerate(LABELS)},
            max_abs_logit_diff=float(np.abs(zn - z[("f32", "test")]).max()))
        R["int8_vs_f32"] = q
        md_out += ["### int8 vs f32 (onnxruntime, both)", "",
                   "| split | top-1 agreement | " + " | ".join(f"AUC {l} int8 / f32 (diff)" for l in LABELS) + " |",
                   "|---|---|" + "---|" * len(LABELS)]
        for sp in q:
            md_out.append(f"| {sp} | {q[sp]['top1_agreement']:.4f} | " + " | ".join(
                f"{q[sp]['per_class'][l]['auc_int8']:.4f} / {q[sp]['per_class'][l]['auc_f32']:.4f} ({q[sp]['per_class'][l]['diff']:+.4f})"
                for l in LABELS) + " |")
        md_out += ["", f"Sizes: int8 {R['model']['size_bytes']['int8']/1e6:.2f} MB, f32 {R['model']['size_bytes']['f32']/1e6:.2f} MB.", ""]
    # robustness
    xr = np.concatenate([tensor_for(pre, camera_augment(im.astype(np.float32), np.random.default_rng([ROBUST_SEED, i])),
                                    size, mean, std) for i, im in enumerate(te_imgs)], 0)
    zr = run_logits(sess[dv], xr)
    pr = softmax(zr, T)
    R["robust"] = per_class(yte, pr, thr, gte, a.reps)
    R["robust_acc"] = float((pr.argmax(1) == yte).mean())
    R["robust_confusion"] = confusion(yte, pr)
    R["robust_ece"] = ece_pair(zr, yte, T)
    md_out += [f"### Robustness: test images through `camera_augment` (seed [{ROBUST_SEED}, index]; variant `{dv}`)", "",
               md_per_class(R["robust"]),
               f"Top-1 accuracy {R['robust_acc']:.3f} (clean {R[f'test_{dv}_acc']:.3f}); ECE after temperature "
               f"{R['robust_ece']['ece_after']:.4f}.", "", md_confusion(R["robust_confusion"], "Confusion matrix, augmented test"),
               ]
    # shortcut audit: linear probe
    fs = features_session(files["f32"])
    tr_imgs = load_images(tr)
    ftr = feats(fs, tensors(tr_imgs, pre, size, mean, std))
    del tr_imgs
    fte = feats(fs, xte)
    s_tr, s_te = np.array([r["source"] for r in tr]), np.array([r["source"] for r in te])
    l_tr, l_te = np.array([r["label"] for r in tr]), np.array([r["label"] for r in te])
    pr_ = {"all images": probe(ftr, s_tr, fte, s_te)}
    for l in LABELS:
        pr_[f"within {l}"] = probe(ftr[l_tr == l], s_tr[l_tr == l], fte[l_te == l], s_te[l_te == l])
    R["probe"] = pr_
    md_out += ["### Shortcut audit: linear probe (logistic regression on the 256-d pooled features; fit on train, "
               "scored on test) predicting the image's source", "",
               "| subset | sources | probe accuracy | majority baseline | balanced acc. | chance (balanced) |",
               "|---|---|---|---|---|---|"]
    for k, v in pr_.items():
        if v:
            md_out.append(f"| {k} | {', '.join(v['classes'])} | {v['accuracy']:.3f} | {v['majority_baseline']:.3f} "
                          f"({v['majority_class']}) | {v['balanced_accuracy']:.3f} | {v['balanced_baseline']:.3f} |")
    md_out.append("")
    R["montage"] = montage(te, xte, cams[dv], P[(dv, "test")], mean, std, card / "cam_montage.png")
    R["eval_s"] = time.time() - t0

    def clean(o):
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        if isinstance(o, (np.floating, float)):
            return None if np.isnan(o) else float(o)
        if isinstance(o, np.integer):
            return int(o)
        return o
    (card / "results.json").write_text(json.dumps(clean(R), indent=1))
    (card / "results.md").write_text("\n".join(md_out) + "\n")
    print("\n".join(md_out))
    print(f"eval took {time.time()-t0:.0f}s")


if __name__ == "__main__":
    main()
