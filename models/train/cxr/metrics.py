"""Metrics: fast AUC, operating-point metrics, ECE, patient-level bootstrap."""
from __future__ import annotations

import numpy as np


def softmax(z, t=1.0):
    z = np.asarray(z, dtype=np.float64) / t
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def auc(y, s):
    """One-vs-rest ROC AUC (ties averaged, Mann-Whitney). y: bool array, s: scores. nan if undefined."""
    from scipy.stats import rankdata
    y = np.asarray(y, dtype=bool)
    npos = int(y.sum())
    nneg = len(y) - npos
    if npos == 0 or nneg == 0:
        return float("nan")
    r = rankdata(np.asarray(s, dtype=np.float64))
    return float((r[y].sum() - npos * (npos + 1) / 2.0) / (npos * nneg))


def op_metrics(y, p, thr):
    """sensitivity, specificity, PPV of 'p >= thr' for positives y."""
    y = np.asarray(y, dtype=bool)
    pred = np.asarray(p) >= thr
    tp = int((pred & y).sum())
    fp = int((pred & ~y).sum())
    fn = int((~pred & y).sum())
    tn = int((~pred & ~y).sum())
    sens = tp / (tp + fn) if tp + fn else float("nan")
    spec = tn / (tn + fp) if tn + fp else float("nan")
    ppv = tp / (tp + fp) if tp + fp else float("nan")
    return sens, spec, ppv


def ece(probs, y, bins=15):
    probs = np.asarray(probs)
    conf = probs.max(1)
    pred = probs.argmax(1)
    acc = (pred == np.asarray(y)).astype(np.float64)
    edges = np.linspace(0, 1, bins + 1)
    e = 0.0
    for i in range(bins):
        lo, hi = edges[i], edges[i + 1]
        m = (conf > lo) & (conf <= hi) if i > 0 else (conf >= lo) & (conf <= hi)
        if m.any():
            e += m.mean() * abs(acc[m].mean() - conf[m].mean())
    return float(e)


def nll(logits, y, t):
    p = softmax(logits, t)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1))))


def fit_temperature(logits, y):
    ts = np.exp(np.linspace(np.log(0.2), np.log(10), 2001))
    losses = [nll(logits, y, t) for t in ts]
    return float(ts[int(np.argmin(losses))])


def bootstrap_groups(groups, reps, seed):
    """Yield index arrays for a patient-level bootstrap (resample groups with replacement)."""
    groups = np.asarray(groups)
    uniq, inv = np.unique(groups, return_inverse=True)
    members = [[] for _ in uniq]
    for i, g in enumerate(inv):
        members[g].append(i)
    members = [np.array(m) for m in members]
    rng = np.random.default_rng(seed)
    for _ in range(reps):
        pick = rng.integers(0, len(uniq), size=len(uniq))
        yield np.concatenate([members[j] for j in pick])


def ci(vals):
    v = np.asarray([x for x in vals if not np.isnan(x)])
    if len(v) == 0:
        return (float("nan"), float("nan"))
    return (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5)))
