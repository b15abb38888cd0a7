"""Photo path against digital path on photosim2 renders of the test films (evaluation only).

Renders every test film (or a label-stratified --limit) with photosim2, runs the device binary
`cxr-edge classify --json` once with --input digital on the original films and once with
--input film-photo on the renders, and writes results.json, results.md and montage.png to --out.
Research use only: these are agreement figures between two inputs of one model, not diagnostic
performance.

    models/train/.venv/bin/python models/eval/photo_eval.py

Never use its figures to tune the simulator, the model or the finder (see README.md).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "train"))
import photosim2  # noqa: E402
from cxr import LABELS  # noqa: E402
from cxr.metrics import auc, bootstrap_groups, ci  # noqa: E402


def film_index(path):
    """Stable per-film index for the render's rng: independent of --limit and manifest order."""
    return int(hashlib.sha1(path.encode()).hexdigest()[:8], 16)


def select(rows, limit):
    if not limit or limit >= len(rows):
        return rows
    out = []
    for lab in LABELS:  # evenly spaced within each label, in proportion to its share
        grp = [r for r in rows if r["label"] == lab]
        k = max(1, round(limit * len(grp) / len(rows)))
        out += [grp[int(i)] for i in np.linspace(0, len(grp) - 1, min(k, len(grp)))]
    return out


def _render_one(job):
    root, path, photo, seed = job
    if os.path.exists(photo) and os.path.exists(photo + ".json"):
        return json.load(open(photo + ".json"))
    img = np.asarray(Image.open(os.path.join(root, path)).convert("L"))
    data, rec = photosim2.render(img, seed, film_index(path))
    rec["path"] = path
    tmp = photo + ".tmp"
    open(tmp, "wb").write(data)
    os.replace(tmp, photo)
    json.dump(rec, open(photo + ".json", "w"))
    return rec


def _nice():
    os.nice(10)


def classify(binary, model, variant, mode, paths, cwd, jobs):
    cmd = ["nice", "-n", "10", binary, "classify", "--json", "-j", str(jobs), "--input", mode, "--model", model]
    if variant:
        cmd += ["--variant", variant]
    out = {}
    for i in range(0, len(paths), 400):  # keep command lines short
        res = subprocess.run(cmd + paths[i:i + 400], cwd=cwd, capture_output=True, text=True)
        if res.returncode == 2:
            sys.exit(f"classify could not run: {res.stderr[-2000:]}")
        for line in res.stdout.splitlines():
            if line.startswith("{"):
                r = json.loads(line)
                out[r["path"]] = r
    return out


def refusal_reason(r):
    if r is None:
        return "no record"
    codes = [q["code"] for q in (r.get("quality") or []) if q.get("code") in ("no_film", "film_cut_off", "film_too_small")]
    if codes:
        return codes[0]
    return re.sub(r"\d+", "N", r.get("error") or "no label")


def probs(r):
    return np.array([r["probs"][k] for k in LABELS])


def agreement(items):
    n = len(items)
    same = sum(1 for d, ph in items if ph.get("label") is not None and ph["label"] == d["label"])
    done = sum(1 for d, ph in items if ph.get("label") is not None)
    return dict(n=n, agree=same / n if n else float("nan"), classified=done,
                agree_classified=same / done if done else float("nan"))


def auc_table(y, pd_, pp, groups, reps, seed):
    out = {}
    boots = {l: [] for l in LABELS}
    for idx in bootstrap_groups(groups, reps, seed):
        for k, l in enumerate(LABELS):
            pos = y[idx] == k
            a, b = auc(pos, pd_[idx, k]), auc(pos, pp[idx, k])
            boots[l].append((a, b, b - a))
    for k, l in enumerate(LABELS):
        pos = y == k
        a, b = auc(pos, pd_[:, k]), auc(pos, pp[:, k])
        bb = np.array(boots[l]) if boots[l] else np.full((1, 3), np.nan)
        out[l] = dict(n_pos=int(pos.sum()), auc_digital=a, auc_digital_ci=ci(bb[:, 0]), auc_photo=b,
                      auc_photo_ci=ci(bb[:, 1]), delta=b - a, delta_ci=ci(bb[:, 2]))
    return out


def effects(rec):
    """Booleans per photo, for the by-effect breakdown."""
    p = rec["params"]
    return {
        "screen (moire)": p["screen"], "hand": p["hand"], "clips": bool(p["clips"]),
        "tilt > 25 deg": rec["tilt_deg"] > 25, "motion blur": bool(p["motion"]),
        "strong defocus": p["defocus"] > 1.8, "flicker banding": bool(p["banding"]),
        "messenger recompress": bool(p["messenger"]), "phone local tone map": p["local_tm"] > 0,
        "negative copy": p.get("negative", False), "film partly off panel": p.get("off_panel", False),
        "reflection": p["reflection"] != "none", "dim room": p["room"] == "dim",
        "mean metering": p["metering"] == "mean", "webcam": p["camera"] == "webcam",
        "tube light box": p["uniformity"] == "tubes", "scratches/dust": bool(p.get("scratches") or p.get("dust")),
        "clear film border": p.get("border", 0) > 0, "smudged lens (flare)": p["flare"] > 0.04,
        "strong barrel (k1 < -0.15)": p["k1"] < -0.15, "portrait frame": p["frame"][1] > p["frame"][0],
        "film < 20% of frame": rec["film_area_frac"] < 0.2,
    }


def corner_error(rec, ph):
    fc = ph.get("film_corners")
    if not fc:
        return None
    a, b = np.array(rec["corners_px"]), np.array(fc, float).reshape(4, 2)
    return float(min(np.max(np.hypot(*(np.roll(b, s, 0) - a).T)) for s in range(4)))


def montage(recs, photos, digital, photo_res, out, n=12, side=240):
    pick = [recs[int(i)] for i in np.linspace(0, len(recs) - 1, min(n, len(recs)))]
    cols = 4
    rows_ = (len(pick) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * side, rows_ * (side + 14)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, rec in enumerate(pick):
        im = Image.open(photos[rec["path"]])
        im.thumbnail((side, side))
        x, y = (k % cols) * side, (k // cols) * (side + 14)
        sheet.paste(im, (x + (side - im.width) // 2, y + (side - im.height) // 2))
        ph = photo_res.get(rec["path"]) or {}
        txt = f"digital {digital[rec['path']]['label']} / photo {ph.get('label') or refusal_reason(ph)}"
        draw.text((x + 3, y + side), txt[:40], fill="black")
    sheet.convert("P", palette=Image.ADAPTIVE, colors=128).save(out, optimize=True)


def fmt(v, c=None):
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "n/a"
    return f"{v:.3f}" + (f" ({c[0]:.3f} to {c[1]:.3f})" if c and not np.isnan(c[0]) else "")


def report_md(res):
    a = res["agreement"]
    L = [f"# photosim2: photo path against digital path ({res['model']}, variant {res['variant'] or 'default'})", "",
         "Research use only, not a diagnosis. Evaluation-only simulator: never used for training or tuning.", "",
         f"Command: `{res['command']}`  ", f"Films: {res['n']} ({res['split']} split), seed {res['seed']}; "
         f"render {res['timing_s']['render']:.0f} s, classify {res['timing_s']['classify']:.0f} s on this machine.", "",
         "## Top-1 agreement (photo label = digital label; a refused photo counts as disagreement)", "",
         "| films | n | agreement | photos classified | agreement among classified |", "|---|---|---|---|---|"]
    for k in ("fully_in_frame", "corners_in_frame", "all", "chest_fully_in_frame"):
        x = a[k]
        L.append(f"| {k.replace('_', ' ')} | {x['n']} | {fmt(x['agree'])} | {x['classified']} | {fmt(x['agree_classified'])} |")
    L += ["", "## Refusals (no result from the photo)", "", "| films | refused | share | reasons |", "|---|---|---|---|"]
    for k, x in res["refusals"].items():
        L.append(f"| {k.replace('_', ' ')} | {x['n_refused']} of {x['n']} | {fmt(x['share'])} | "
                 + ", ".join(f"{r}: {c}" for r, c in x["reasons"].items()) + " |")
    L += ["", "## AUC, one-vs-rest, films fully in frame and classified on both paths (patient-level bootstrap 95% CI)", "",
          f"n = {res['auc_n']} films, {res['auc_patients']} patients, {res['reps']} bootstrap replicates.", "",
          "| class | positives | AUC digital | AUC photo | change (photo - digital) |", "|---|---|---|---|---|"]
    for l, x in res["auc"].items():
        L.append(f"| {l} | {x['n_pos']} | {fmt(x['auc_digital'], x['auc_digital_ci'])} | {fmt(x['auc_photo'], x['auc_photo_ci'])} | {fmt(x['delta'], x['delta_ci'])} |")
    co = res["chest_as_other"]
    L += ["", "## Chest films called `other`", "",
          f"Films fully in frame: digital {co['digital']} of {co['n']}, photo {co['photo']} of {co['n_photo']} classified photos.", "",
          "## Agreement by effect (films fully in frame)", "",
          "| effect | n with | agreement with | n without | agreement without | refused with |", "|---|---|---|---|---|---|"]
    for k, x in res["by_effect"].items():
        L.append(f"| {k} | {x['n_with']} | {fmt(x['agree_with'])} | {x['n_without']} | {fmt(x['agree_without'])} | {fmt(x['refused_with'])} |")
    ce = res["corner_error_px"]
    L += ["", f"Finder corner error on classified fully-in-frame photos (worst corner, px): median {fmt(ce['median'])}, "
          f"90th percentile {fmt(ce['p90'])}, share over 20 px {fmt(ce['over_20px'])}.", "",
          "Agreement among those photos by the finder's worst-corner error: " + ", ".join(
              f"{k}: {fmt(x['agree'])} of {x['n']}" for k, x in res.get("agreement_by_corner_error", {}).items()) + ".", "",
          "Photo warnings on classified photos: " + ", ".join(f"{k} {v}" for k, v in res["warnings"].items()), ""]
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--manifest", default=str(Path(os.environ.get("CXR_DATA", ROOT.parent / "shared" / "cxr")) / "manifest.csv"))
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=0, help="label-stratified subset of this many films")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--scratch", default=str(ROOT / "target" / "photosim2"), help="renders go here (git-ignored target/ by default)")
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "cxr-edge"))
    ap.add_argument("--model", default=str(ROOT / "models" / "cxr-net.toml"))
    ap.add_argument("--variant", default=None)
    ap.add_argument("--workers", type=int, default=2, help="render processes (niced)")
    ap.add_argument("--jobs", type=int, default=2, help="cxr-edge classify -j")
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--out", default=str(HERE.parent / "card" / "photosim2"))
    a = ap.parse_args()
    root = str(Path(a.manifest).resolve().parent)
    rows = [r for r in csv.DictReader(open(a.manifest)) if r["split"] == a.split]
    rows = select(rows, a.limit)
    # Absolute: classify runs in the data root, where a relative render path would not resolve.
    pdir = Path(a.scratch).resolve() / f"seed{a.seed}"
    pdir.mkdir(parents=True, exist_ok=True)
    photos = {r["path"]: str(pdir / (Path(r["path"]).stem + f"-{film_index(r['path']):08x}.jpg")) for r in rows}
    t0 = time.time()
    jobs = [(root, r["path"], photos[r["path"]], a.seed) for r in rows]
    with Pool(a.workers, initializer=_nice) as pool:
        recs = pool.map(_render_one, jobs, chunksize=4)
    t1 = time.time()
    digital = classify(a.bin, a.model, a.variant, "digital", [r["path"] for r in rows], root, a.jobs)
    ph_raw = classify(a.bin, a.model, a.variant, "film-photo", [photos[r["path"]] for r in rows], root, a.jobs)
    t2 = time.time()
    by_photo = {v: k for k, v in photos.items()}
    photo_res = {by_photo[k]: v for k, v in ph_raw.items() if k in by_photo}
    meta = {r["path"]: r for r in rows}
    recs = [x for x in recs if digital.get(x["path"], {}).get("label") is not None]  # digital must classify
    pairs = lambda sel: [(digital[x["path"]], photo_res.get(x["path"]) or {}) for x in sel]  # noqa: E731
    full = [x for x in recs if x["fully_in_frame"]]
    sets = {"fully_in_frame": full, "corners_in_frame": [x for x in recs if x["corners_in_frame"]], "all": recs,
            "chest_fully_in_frame": [x for x in full if meta[x["path"]]["label"] != "other"]}
    res = dict(model=a.model, variant=a.variant, split=a.split, seed=a.seed, n=len(recs), reps=a.reps,
               command="python models/eval/photo_eval.py " + " ".join(sys.argv[1:]),
               timing_s=dict(render=t1 - t0, classify=t2 - t1))
    res["agreement"] = {k: agreement(pairs(v)) for k, v in sets.items()}
    res["refusals"] = {}
    for k in ("fully_in_frame", "all"):
        refused = [refusal_reason(ph or None) for _, ph in pairs(sets[k]) if not ph or ph.get("label") is None]
        res["refusals"][k] = dict(n=len(sets[k]), n_refused=len(refused), share=len(refused) / max(1, len(sets[k])),
                                  reasons=dict(Counter(refused).most_common()))
    both = [x for x in full if (photo_res.get(x["path"]) or {}).get("label") is not None]
    y = np.array([LABELS.index(meta[x["path"]]["label"]) for x in both])
    pd_ = np.array([probs(digital[x["path"]]) for x in both]).reshape(-1, 4)
    pp = np.array([probs(photo_res[x["path"]]) for x in both]).reshape(-1, 4)
    groups = [meta[x["path"]]["patient_id"] for x in both]
    res["auc_n"], res["auc_patients"] = len(both), len(set(groups))
    res["auc"] = auc_table(y, pd_, pp, groups, a.reps, 1234)
    chest = [x for x in full if meta[x["path"]]["label"] != "other"]
    chest_ph = [photo_res[x["path"]] for x in chest if (photo_res.get(x["path"]) or {}).get("label") is not None]
    res["chest_as_other"] = dict(n=len(chest), digital=sum(digital[x["path"]]["label"] == "other" for x in chest),
                                 n_photo=len(chest_ph), photo=sum(r["label"] == "other" for r in chest_ph))
    res["by_effect"] = {}
    eff = {x["path"]: effects(x) for x in full}
    for name in eff[full[0]["path"]] if full else []:
        w = [x for x in full if eff[x["path"]][name]]
        wo = [x for x in full if not eff[x["path"]][name]]
        aw, awo = agreement(pairs(w)), agreement(pairs(wo))
        res["by_effect"][name] = dict(n_with=len(w), agree_with=aw["agree"], n_without=len(wo), agree_without=awo["agree"],
                                      refused_with=1 - aw["classified"] / len(w) if w else float("nan"))
    # Each found film's worst-corner error, once (`None` where the photo gave no corners).
    cerr = {x["path"]: corner_error(x, photo_res.get(x["path"]) or {}) for x in recs}
    errs = [cerr[x["path"]] for x in both if cerr[x["path"]] is not None]
    res["corner_error_px"] = dict(n=len(errs), median=float(np.median(errs)) if errs else float("nan"),
                                  p90=float(np.percentile(errs, 90)) if errs else float("nan"),
                                  over_20px=float(np.mean(np.array(errs) > 20)) if errs else float("nan"))
    # How much of the gap is the finder's: agreement among classified photos by how close the
    # found film is. Where the finder is within a few pixels, what is left is the model's.
    res["agreement_by_corner_error"] = {}
    for name, lo, hi in (("<= 5 px", -1.0, 5.0), ("5-20 px", 5.0, 20.0), ("> 20 px", 20.0, float("inf"))):
        sel = [x for x in both if lo < (cerr[x["path"]] or float("inf")) <= hi]
        res["agreement_by_corner_error"][name] = agreement(pairs(sel))
    res["warnings"] = dict(Counter(q["code"] for r in photo_res.values() if r.get("label") is not None
                                   for q in r.get("quality") or []).most_common())
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    json.dump(res, open(out / "results.json", "w"), indent=1, default=float)
    (out / "results.md").write_text(report_md(res))
    # per-film lines (small) so any figure can be recomputed or broken down differently;
    # probabilities in LABELS order
    with open(out / "per_film.jsonl", "w") as f:
        for x in recs:
            ph = photo_res.get(x["path"]) or {}
            f.write(json.dumps(dict(path=x["path"], label=meta[x["path"]]["label"], source=meta[x["path"]]["source"],
                                    fully_in_frame=x["fully_in_frame"], corners_in_frame=x["corners_in_frame"],
                                    digital=digital[x["path"]]["label"], photo=ph.get("label"),
                                    digital_probs=[round(float(v), 6) for v in probs(digital[x["path"]])],
                                    photo_probs=([round(float(v), 6) for v in probs(ph)]
                                                 if ph.get("label") is not None else None),
                                    refusal=None if ph.get("label") else refusal_reason(ph or None),
                                    corner_error_px=cerr[x["path"]],
                                    effects=[k for k, v in effects(x).items() if v])) + "\n")
    montage(recs, photos, digital, photo_res, out / "montage.png")
    print(report_md(res))


if __name__ == "__main__":
    main()
