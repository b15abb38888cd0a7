"""Leave-one-source-out folds: how a training recipe does on a collection it has never seen.

usage: python loso.py --recipe v1 --out runs/loso [--folds ieee8023,nih,kermany] [--epochs 14]
                      [--photos DIR] [--reps 1000] [--eval-only]
       python loso.py --compare v1,v2 --out runs/loso [--card ../card/loso]
       python loso.py --ablation v1,v1+eq,v1+cue --out runs/loso [--card ../card/loso]
       python loso.py --runs v1,v1+pct --roots runs/loso,runs/loso-seed2 [--card ../card/loso]

For each fold the recipe is trained from scratch without the held-out source - neither in train
nor in val, so it cannot steer model selection, temperature or thresholds either - and then
scored on every film of that source (all three splits: the source is unseen as a whole):

| fold | question | positives | negatives |
|---|---|---|---|
| `ieee8023` | COVID-19 on films from many other hospitals | its covid films | test-split normals of the other sources |
| `nih` | pneumonia vs normal in an unseen adult hospital | its pneumonia films | its normal films |
| `kermany` | pneumonia vs normal in unseen (paediatric) films | its pneumonia films | its normal films |

Every fold also reports the unseen chest films called `other` (top-1) and the unseen normal films
whose top-1 is `covid` (the failure a new hospital sees first). Temperature and operating points
come from the fold's own val split (the rules of calibrate.py). 95% CIs: patient-level bootstrap.

Writes OUT/RECIPE/FOLD/{best.pt,log.jsonl,eval.json} and OUT/RECIPE/loso.{json,md}. Training is
skipped when a fold's best.pt exists (delete it to retrain). Never touches the shipped files.
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
from cxr import LABELS  # noqa: E402
from cxr.data import load_images, load_manifest, split_rows  # noqa: E402
from cxr.metrics import auc, bootstrap_groups, ci, softmax  # noqa: E402
from cxr.report import write_card_files  # noqa: E402
from calibrate import operating_points  # noqa: E402

FOLDS = {
    "ieee8023": dict(task="covid", pos="covid", neg="normal", neg_from="others-test"),
    "nih": dict(task="pneumonia", pos="pneumonia", neg="normal", neg_from="self"),
    "kermany": dict(task="pneumonia", pos="pneumonia", neg="normal", neg_from="self"),
    "c19rad": dict(task="covid", pos="covid", neg="normal", neg_from="self"),
}
# Extra train.py arguments per recipe. v1 = the shipped recipe (train.py's defaults).
# v2 = remove source cues instead of learning them: rank equalisation (cxr-eq-v2), borders /
# burned-in text / flips / turns (cue_augment), sources mixed within each class (alpha 0.5),
# and a class-conditional source adversary.
# v2's four changes, each on its own so that v2 and the combinations are built from them.
RECIPES_EQ = ["--preprocess", "cxr-eq-v2", "--mean", "0.5", "--std", "0.29"]
RECIPES_CUE = ["--p-cue", "0.5"]
RECIPES_MIX = ["--source-alpha", "0.5"]
RECIPES_ADV = ["--adv-source", "0.3"]
RECIPES: dict[str, list[str]] = {
    "v1": [],
    "v2": RECIPES_EQ + RECIPES_CUE + RECIPES_MIX + RECIPES_ADV,
    # v2's four changes one at a time on top of v1 (the ablation the card reports): which of
    # them helps on an unseen source and which hurts.
    "v1+eq": RECIPES_EQ,
    "v1+cue": RECIPES_CUE,
    "v1+mix": RECIPES_MIX,
    "v1+adv": RECIPES_ADV,
    # the two image-side changes together, without the two that act on the source label
    # (mixing and the adversary each collapsed the paediatric fold on their own)
    "v1+eq+cue": RECIPES_EQ + RECIPES_CUE,
    # a milder contrast normalisation than v2's equalisation (percentile stretch, Python only)
    "v1+pct": ["--preprocess", "cxr-pct-v2", "--mean", "0.58", "--std", "0.27"],
    # a phone's own processing on the camera-augmented items (local tone map, sharpening, haze,
    # banding), for the photo path; judged on photosim2 val renders
    "v1+phone": ["--p-phone", "0.5"],
    # each chest film given another collection's grey levels, sharpness and grain (half the
    # items), so a collection's look stops telling the class; judged on photosim2 val renders
    "v1+style": ["--p-style", "0.5"],
    # a photo's or camera augmentation's prediction pulled towards a clean view of the same film
    # (AugMix's Jensen-Shannon consistency), for the photo path; judged on photosim2 val renders
    "v1+pair": ["--pair", "10"],
    # online group DRO over (class, source) cells: the worst-off cells weigh most
    "v1+dro": ["--group-dro", "0.01"],
    # the weights' moving average (about the last two epochs) instead of the last weights:
    # flatter minima, less spread between runs (Arpit et al. 2022 on domain generalisation)
    "v1+ema": ["--ema", "0.995"],
    # the same over about the last 50 steps only (the converged end of the schedule)
    "v1+ema98": ["--ema", "0.98"],
    # item 5's 10x10 CAM (last stage at stride 16), nothing else changed
    "v1+cam10": ["--last-stride", "1"],
}


def model_logits(ckpt, rows, imgs, threads=2):
    """f32 logits of the checkpoint on the rows' clean (digital) images, in the recipe's
    preprocessing (recorded in the checkpoint's meta)."""
    import torch
    from cxr.model import CxrNet
    from cxr.preprocess import tensor_for
    torch.set_num_threads(threads)
    ck = torch.load(ckpt, map_location="cpu", weights_only=False)
    m = ck["meta"]
    net = CxrNet(**m.get("net", {}))
    net.load_state_dict(ck["state"])
    net.eval()
    pre = m.get("preprocess", "cxr-area-v1")
    out = []
    with torch.no_grad():
        for i in range(0, len(rows), 64):
            xb = np.concatenate([tensor_for(pre, im.astype(np.float32), m["size"], m["mean"], m["std"])
                                 for im in imgs[i:i + 64]])
            out.append(net(torch.from_numpy(xb))[0].numpy())
    return np.concatenate(out).astype(np.float64), m


def boot(groups, reps, seed, fn):
    """Point estimate and patient-level bootstrap 95% CI of fn(index array)."""
    est = fn(np.arange(len(groups)))
    vals = [fn(idx) for idx in bootstrap_groups(groups, reps, seed)] if reps else []
    return dict(value=est, ci=list(ci(vals)) if vals else [float("nan")] * 2)


def score_fold(fold, z_eval, rows_eval, t, thr, reps, seed=4321):
    spec = FOLDS[fold]
    p = softmax(z_eval, t)
    kpos = LABELS.index(spec["pos"])
    y = np.array([r["label"] for r in rows_eval])
    held = np.array([r["source"] == fold for r in rows_eval])
    groups = np.array([r["patient_id"] for r in rows_eval])
    pos_mask = held & (y == spec["pos"])
    neg_mask = y == spec["neg"]
    if spec["neg_from"] == "self":
        neg_mask &= held
    task = pos_mask | neg_mask
    top = p.argmax(1)
    chest_held = held & (y != "other")
    normal_held = held & (y == "normal")

    def f_auc(idx):
        m = task[idx]
        return auc(pos_mask[idx][m], p[idx][m, kpos])

    def f_sens(idx):
        m = pos_mask[idx]
        return float((p[idx][m, kpos] >= thr[spec["pos"]]).mean()) if m.any() else float("nan")

    def f_spec(idx):
        m = neg_mask[idx]
        return float((p[idx][m, kpos] < thr[spec["pos"]]).mean()) if m.any() else float("nan")

    def share(mask, k):
        def f(idx):
            m = mask[idx]
            return float((top[idx][m] == k).mean()) if m.any() else float("nan")
        return f

    res = dict(
        task=f"{spec['pos']} vs {spec['neg']}", n_pos=int(pos_mask.sum()), n_neg=int(neg_mask.sum()),
        negatives="held-out source" if spec["neg_from"] == "self" else "test-split normals of the other sources",
        auc=boot(groups, reps, seed, f_auc),
        sens_at_val_threshold=boot(groups, reps, seed, f_sens),
        spec_at_val_threshold=boot(groups, reps, seed, f_spec),
        chest_called_other=boot(groups, reps, seed, share(chest_held, LABELS.index("other"))),
        n_chest=int(chest_held.sum()),
        normals_called_covid=boot(groups, reps, seed, share(normal_held, LABELS.index("covid"))),
        n_normal=int(normal_held.sum()),
        temperature=t, thresholds=thr,
    )
    return res


def train_fold(recipe, fold, out, epochs, photos, threads, extra=()):
    cmd = [sys.executable, str(HERE / "train.py"), "--out", str(out), "--epochs", str(epochs),
           "--exclude-source", fold, "--threads", str(threads)] + RECIPES[recipe] + list(extra)
    if photos:
        cmd += ["--photos", photos]
    print("==", " ".join(cmd), flush=True)
    with open(out / "train.log", "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=HERE)


def fmt(d, pct=False):
    v, (lo, hi) = d["value"], d["ci"]
    if v != v:  # nan: nothing to count (e.g. a source without normal films)
        return "-"
    if pct:
        return f"{100 * v:.1f}% ({100 * lo:.1f}-{100 * hi:.1f})"
    return f"{v:.3f} ({lo:.3f}-{hi:.3f})"


def table(recipe, res):
    md = [f"Recipe `{recipe}`, leave-one-source-out (each row: a model trained without that source; "
          "95% patient-level bootstrap CIs):", "",
          "| held-out source | task (negatives) | n pos / neg | AUC | sens. at val point | spec. at val point "
          "| chest films called `other` | normals called `covid` |",
          "|---|---|---|---|---|---|---|---|"]
    for fold, r in res["folds"].items():
        md.append(f"| `{fold}` | {r['task']} ({r['negatives']}) | {r['n_pos']} / {r['n_neg']} | {fmt(r['auc'])} "
                  f"| {fmt(r['sens_at_val_threshold'], True)} | {fmt(r['spec_at_val_threshold'], True)} "
                  f"| {fmt(r['chest_called_other'], True)} of {r['n_chest']} "
                  f"| {fmt(r['normals_called_covid'], True)} of {r['n_normal']} |")
    md += ["", f"Unseen-source macro AUC (mean of the rows): **{res['macro_auc']:.3f}**"]
    return "\n".join(md) + "\n"


def compare(root: Path, recipes, card: Path | None):
    """Side-by-side table of the folds every recipe has (each fold's eval.json); writes
    CARD/loso.{json,md} when asked."""
    res = {r: {f: json.loads((root / r / f / "eval.json").read_text())
               for f in FOLDS if (root / r / f / "eval.json").exists()} for r in recipes}
    folds = [f for f in FOLDS if all(f in res[r] for r in recipes)]
    md = ["| held-out source | task | n pos / neg | " + " | ".join(f"AUC {r}" for r in recipes) + " | "
          + " | ".join(f"normals called covid, {r}" for r in recipes) + " | "
          + " | ".join(f"chest films called other, {r}" for r in recipes) + " |",
          "|---|---|---|" + "---|" * (3 * len(recipes))]
    for f in folds:
        a = res[recipes[0]][f]
        md.append(f"| `{f}` | {a['task']} ({a['negatives']}) | {a['n_pos']} / {a['n_neg']} | "
                  + " | ".join(fmt(res[r][f]["auc"]) for r in recipes) + " | "
                  + " | ".join(fmt(res[r][f]["normals_called_covid"], True) for r in recipes) + " | "
                  + " | ".join(fmt(res[r][f]["chest_called_other"], True) for r in recipes) + " |")
    macro = {r: float(np.mean([res[r][f]["auc"]["value"] for f in folds])) for r in recipes}
    md += ["", "Unseen-source macro AUC over these folds: "
           + ", ".join(f"{r} **{macro[r]:.3f}**" for r in recipes)]
    text = "\n".join(md) + "\n"
    print(text)
    if card:
        write_card_files(card, "loso", {"folds": folds, "macro_auc": macro, "results": res}, text)


def ablation(root: Path, recipes, card: Path | None):
    """One row per recipe (the baseline first): AUC per fold with its CI ("-" where that fold was
    not run for the recipe), the mean AUC over the folds the recipe has, and its change against
    the baseline over the folds both have; plus the share of the NIH hospital's normal films
    called covid and the worst fold's chest films called `other`. Writes
    CARD/ablation.{json,md} when asked."""
    res = {r: {f: json.loads((root / r / f / "eval.json").read_text())
               for f in FOLDS if (root / r / f / "eval.json").exists()} for r in recipes}
    folds = [f for f in FOLDS if any(f in res[r] for r in recipes)]
    if not folds:
        sys.exit("no fold has been scored for these recipes")
    base = recipes[0]

    def mean_auc(r, fs):
        return float(np.mean([res[r][f]["auc"]["value"] for f in fs])) if fs else float("nan")

    md = ["| recipe | changes from v1 | " + " | ".join(f"AUC `{f}`" for f in folds)
          + f" | mean AUC (folds) | change vs `{base}` on the same folds | normals called covid (`nih`) "
          "| chest films called other (worst fold) |",
          "|---|---|" + "---|" * (len(folds) + 4)]
    summary = {}
    for r in recipes:
        have = [f for f in folds if f in res[r]]
        common = [f for f in have if f in res[base]]
        delta = mean_auc(r, common) - mean_auc(base, common)
        summary[r] = dict(folds=have, mean_auc=mean_auc(r, have), delta_vs_base=delta, delta_folds=common)
        nih = fmt(res[r]["nih"]["normals_called_covid"], True) if "nih" in res[r] else "-"
        worst = max(have, key=lambda f: res[r][f]["chest_called_other"]["value"]) if have else None
        other = f"{fmt(res[r][worst]['chest_called_other'], True)} (`{worst}`)" if worst else "-"
        md.append(f"| `{r}` | `{' '.join(RECIPES[r]) or '(none)'}` | "
                  + " | ".join(fmt(res[r][f]["auc"]) if f in res[r] else "-" for f in folds)
                  + (f" | **{summary[r]['mean_auc']:.3f}** ({len(have)})" if have else " | -")
                  + (f" | {delta:+.3f} ({len(common)}) " if common else " | - ")
                  + f"| {nih} | {other} |")
    text = "\n".join(md) + "\n"
    print(text)
    if card:
        write_card_files(card, "ablation", {"folds": folds, "baseline": base, "summary": summary,
                                            "train_args": {r: RECIPES[r] for r in recipes},
                                            "results": res}, text)


def runs_table(roots, recipes, card: Path | None):
    """Repeat runs (one `--out` root per seed or host) pooled per recipe and fold: each fold's
    AUC as mean +- sd over the runs that have it, the runs themselves, and each recipe's change
    against the first recipe per fold and over the folds both have, with its standard error
    (sd/sqrt(n) per recipe and fold, combined as independent). A single run's bootstrap CI says
    how well one model is measured; the spread between runs says how much another training run
    would move it, which is what a recipe comparison has to beat. Writes CARD/runs.{json,md}."""
    aucs = {r: {f: [] for f in FOLDS} for r in recipes}
    where = {r: {f: [] for f in FOLDS} for r in recipes}
    for root in roots:
        for r in recipes:
            for f in FOLDS:
                p = Path(root) / r / f / "eval.json"
                if p.exists():
                    aucs[r][f].append(json.loads(p.read_text())["auc"]["value"])
                    where[r][f].append(str(root))
    folds = [f for f in FOLDS if any(aucs[r][f] for r in recipes)]
    if not folds:
        sys.exit("no fold has been scored under these roots")
    base = recipes[0]

    def stats(v):
        n = len(v)
        m = float(np.mean(v)) if n else float("nan")
        sd = float(np.std(v, ddof=1)) if n > 1 else float("nan")
        return m, sd, n

    md = ["| recipe | " + " | ".join(f"AUC `{f}`: mean +- sd (runs)" for f in folds)
          + f" | mean over folds | change vs `{base}` (+- SE), folds with >= 2 runs of both |",
          "|---|" + "---|" * (len(folds) + 2)]
    summary = {}
    for r in recipes:
        cells, means, diffs, ses = [], {}, [], []
        for f in folds:
            m, sd, n = stats(aucs[r][f])
            means[f] = m
            runs = ", ".join(f"{v:.3f}" for v in aucs[r][f])
            cells.append("-" if n == 0 else f"{m:.3f} +- {sd:.3f} ({runs})" if n > 1 else f"{m:.3f} ({runs})")
            mb, sdb, nb = stats(aucs[base][f])
            if r != base and n > 1 and nb > 1:
                diffs.append(m - mb)
                ses.append((sd ** 2 / n + sdb ** 2 / nb) ** 0.5)
        have = [f for f in folds if aucs[r][f]]
        macro = float(np.mean([means[f] for f in have])) if have else float("nan")
        d = float(np.mean(diffs)) if diffs else float("nan")
        se = float(np.sqrt(np.sum(np.square(ses))) / len(ses)) if ses else float("nan")
        summary[r] = dict(mean_auc_per_fold=means, macro=macro, folds=have, delta=d, delta_se=se,
                          delta_folds=len(diffs), runs={f: aucs[r][f] for f in folds},
                          roots={f: where[r][f] for f in folds})
        md.append(f"| `{r}` | " + " | ".join(cells) + f" | {macro:.3f} ({len(have)}) | "
                  + (f"{d:+.3f} +- {se:.3f} ({len(diffs)})" if diffs else "-") + " |")
    text = "\n".join(md) + "\n"
    print(text)
    if card:
        write_card_files(card, "runs", {"roots": [str(x) for x in roots], "folds": folds, "baseline": base,
                                        "summary": summary}, text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipe", default="v1", choices=sorted(RECIPES))
    ap.add_argument("--out", default=str(HERE / "runs" / "loso"))
    ap.add_argument("--folds", default="ieee8023,nih,kermany")
    ap.add_argument("--epochs", type=int, default=14)
    ap.add_argument("--photos", default=None, help="device-path photos (run.sh makes them)")
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=None,
                    help="train.py's seed (default: train.py's own); give each seed its own --out")
    ap.add_argument("--eval-only", action="store_true")
    ap.add_argument("--compare", default=None, metavar="R1,R2",
                    help="only print (and with --card write) the folds both recipes have, side by side")
    ap.add_argument("--ablation", default=None, metavar="BASE,R1,...",
                    help="only print (and with --card write ablation.{json,md}) one row per recipe")
    ap.add_argument("--runs", default=None, metavar="BASE,R1,...",
                    help="pool repeat runs: one row per recipe over every --roots root (mean +- sd)")
    ap.add_argument("--roots", default=None, metavar="DIR1,DIR2,...",
                    help="with --runs: the --out roots of the repeat runs (default: --out only)")
    ap.add_argument("--card", default=None,
                    help="with --compare / --ablation / --runs: write loso / ablation / runs.{json,md} here")
    ap.add_argument("--smoke", action="store_true",
                    help="plumbing check: 1 epoch on 300 images, 20 bootstrap reps (figures meaningless)")
    a = ap.parse_args()
    if a.runs:
        roots = [Path(x) for x in (a.roots or a.out).split(",") if x]
        runs_table(roots, a.runs.split(","), Path(a.card) if a.card else None)
        return
    if a.ablation:
        ablation(Path(a.out), a.ablation.split(","), Path(a.card) if a.card else None)
        return
    if a.compare:
        compare(Path(a.out), a.compare.split(","), Path(a.card) if a.card else None)
        return
    extra = []
    if a.smoke:
        a.epochs, a.reps, extra = 1, 20, ["--subset", "300", "--val-subset", "200"]
    if a.seed is not None:
        extra += ["--seed", str(a.seed)]
    root = Path(a.out) / a.recipe
    rows = load_manifest()
    res = {"recipe": a.recipe, "train_args": RECIPES[a.recipe], "epochs": a.epochs, "seed": a.seed,
           "photos": bool(a.photos), "folds": {}}
    for fold in [f for f in a.folds.split(",") if f]:
        if fold not in FOLDS:
            sys.exit(f"unknown fold {fold}; known: {', '.join(FOLDS)}")
        d = root / fold
        d.mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        if not (d / "best.pt").exists():
            if a.eval_only:
                sys.exit(f"{d}/best.pt missing (--eval-only)")
            train_fold(a.recipe, fold, d, a.epochs, a.photos, a.threads, extra)
        train_s = time.time() - t0
        val = [r for r in split_rows(rows, "val") if r["source"] != fold]
        ev = [r for r in rows if r["source"] == fold or
              (r["split"] == "test" and FOLDS[fold]["neg_from"] == "others-test" and r["label"] == FOLDS[fold]["neg"])]
        z_val, meta = model_logits(d / "best.pt", val, load_images(val), a.threads)
        t, thr, _ = operating_points(z_val, np.array([r["y"] for r in val]))
        z_ev, _ = model_logits(d / "best.pt", ev, load_images(ev), a.threads)
        r = score_fold(fold, z_ev, ev, t, thr, a.reps)
        r["train_s_this_call"] = round(train_s, 1)
        r["val_images"] = len(val)
        (d / "eval.json").write_text(json.dumps(r, indent=1))
        res["folds"][fold] = r
        print(fold, json.dumps({k: r[k] for k in ("task", "auc", "chest_called_other", "normals_called_covid")}),
              flush=True)
    res["macro_auc"] = float(np.mean([r["auc"]["value"] for r in res["folds"].values()]))
    (root / "loso.json").write_text(json.dumps(res, indent=1))
    (root / "loso.md").write_text(table(a.recipe, res))
    print(table(a.recipe, res))


if __name__ == "__main__":
    main()
