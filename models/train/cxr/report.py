"""Shared tables for evaluate.py and eval_jsonl.py (so the Rust path is scored identically)."""
from __future__ import annotations

import numpy as np

from . import LABELS
from .metrics import auc, bootstrap_groups, ci, ece, op_metrics

SOURCES = ["ieee8023", "c19rad", "kermany", "nih", "imagenet", "knee"]


def per_class(y, p, thr, groups, reps=1000, seed=1234, labels=LABELS):
    """Per class: AUC, sens, spec, PPV at thr (dict label->t), with patient-level bootstrap CIs.
    `labels`: the class order of p's columns (a model manifest's `labels`)."""
    y = np.asarray(y)
    p = np.asarray(p)
    out = {}
    pts = {}
    for k, l in enumerate(labels):
        pos = y == k
        se, sp, ppv = op_metrics(pos, p[:, k], thr[l])
        pts[l] = dict(n_pos=int(pos.sum()), n_neg=int((~pos).sum()), auc=auc(pos, p[:, k]), sens=se, spec=sp, ppv=ppv)
    boots = {l: {m: [] for m in ("auc", "sens", "spec", "ppv")} for l in labels}
    if reps:
        for idx in bootstrap_groups(groups, reps, seed):
            yb, pb = y[idx], p[idx]
            for k, l in enumerate(labels):
                pos = yb == k
                se, sp, ppv = op_metrics(pos, pb[:, k], thr[l])
                b = boots[l]
                b["auc"].append(auc(pos, pb[:, k]))
                b["sens"].append(se)
                b["spec"].append(sp)
                b["ppv"].append(ppv)
    for l in labels:
        d = pts[l]
        for m in ("auc", "sens", "spec", "ppv"):
            d[m + "_ci"] = ci(boots[l][m]) if reps and not np.isnan(d[m]) else (float("nan"), float("nan"))
        out[l] = d
    return out


def confusion(y, p):
    n = np.asarray(p).shape[1]
    cm = np.zeros((n, n), dtype=int)
    for a, b in zip(y, np.asarray(p).argmax(1)):
        cm[a, b] += 1
    return cm.tolist()


def fmt(v, ci_=None, nd=3):
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "n/a"
    s = f"{v:.{nd}f}"
    if ci_ is not None and not np.isnan(ci_[0]):
        s += f" ({ci_[0]:.{nd}f}-{ci_[1]:.{nd}f})"
    return s


def md_per_class(res, title=None):
    lines = []
    if title:
        lines += [f"**{title}**", ""]
    lines += ["| class | n+ / n- | AUC (95% CI) | sensitivity | specificity | PPV |", "|---|---|---|---|---|---|"]
    for l, d in res.items():
        lines.append(f"| {l} | {d['n_pos']} / {d['n_neg']} | {fmt(d['auc'], d['auc_ci'])} | {fmt(d['sens'], d['sens_ci'])} | "
                     f"{fmt(d['spec'], d['spec_ci'])} | {fmt(d['ppv'], d['ppv_ci'])} |")
    return "\n".join(lines) + "\n"


def md_confusion(cm, title=None, labels=LABELS):
    lines = [f"**{title}**", ""] if title else []
    lines += ["| true \\ pred | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for l, r in zip(labels, cm):
        lines.append(f"| {l} | " + " | ".join(str(v) for v in r) + " |")
    return "\n".join(lines) + "\n"


def per_source(rows, p, thr, reps=1000, seed=1234, labels=LABELS):
    """Per source, one-vs-rest inside that source; n/a where a class (or its complement) is absent.
    Sources in SOURCES order first, then any others (a researcher's own data) by name."""
    y = np.array([r["y"] for r in rows])
    g = np.array([r["patient_id"] for r in rows])
    src = np.array([r["source"] for r in rows])
    out = {}
    present = set(src.tolist())
    for s in [x for x in SOURCES if x in present] + sorted(present - set(SOURCES)):
        m = src == s
        out[s] = per_class(y[m], p[m], thr, g[m], reps, seed, labels)
    return out


def md_per_source(ps):
    lines = ["| source | class | n+ / n- | AUC (95% CI) | sensitivity (recall) | specificity | PPV |",
             "|---|---|---|---|---|---|---|"]
    for s, res in ps.items():
        for l, d in res.items():
            if d["n_pos"] == 0:
                lines.append(f"| {s} | {l} | 0 / {d['n_neg']} | n/a (absent) | n/a | {fmt(d['spec'], d['spec_ci'])} | n/a |")
                continue
            lines.append(f"| {s} | {l} | {d['n_pos']} / {d['n_neg']} | {fmt(d['auc'], d['auc_ci'])} | {fmt(d['sens'], d['sens_ci'])} | "
                         f"{fmt(d['spec'], d['spec_ci'])} | {fmt(d['ppv'], d['ppv_ci'])} |")
    return "\n".join(lines) + "\n"


def ece_pair(logits, y, t):
    from .metrics import softmax
    return dict(ece_before=ece(softmax(logits, 1.0), y), ece_after=ece(softmax(logits, t), y))


def write_card_files(out, stem, res, table):
    """OUT/STEM.json (the figures) and OUT/STEM.md (the table) for the model card."""
    import json
    from pathlib import Path
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(res, indent=1))
    (out / f"{stem}.md").write_text(table)
