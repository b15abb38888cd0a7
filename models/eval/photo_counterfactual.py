"""Which photosim2 effect moves a photo's answer? Val renders only (analysis, never tuning).

usage: python models/eval/photo_counterfactual.py PER_FILM.jsonl MANIFEST OUT_DIR
           [--scratch target/photosim2-val/seed2024] [--digital normal]

PER_FILM.jsonl is photo_eval.py's output for MANIFEST on the renders in --scratch. For every film
fully in frame whose photo was classified and whose digital answer is --digital, each effect the
render had is switched off in turn (the render's recorded parameters otherwise unchanged, the
same noise seed) and the photo is rendered and classified again. Prints, per effect, among the
films classified both ways: how many photo answers equal the digital one with and without the
effect, how many read "covid", and how many the finder refuses without it. OUT_DIR gets the
renders and counterfactual.json. Research use only.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
import photosim2  # noqa: E402
from photo_eval import classify  # noqa: E402

# effect -> parameter overrides that switch it off (None: the render did not have it)
OFF = {
    "local_tm": lambda p: dict(local_tm=0.0) if p["local_tm"] > 0 else None,
    "messenger": lambda p: dict(messenger=None) if p["messenger"] else None,
    "banding": lambda p: dict(banding=None) if p["banding"] else None,
    "scratches_dust": lambda p: dict(scratches=0, dust=0) if p.get("scratches") or p.get("dust") else None,
    "s_curve": lambda p: dict(s_curve=0.0) if p["s_curve"] > 0.15 else None,
    "sharpen": lambda p: dict(sharpen=[0.0, p["sharpen"][1]]),
    "denoise": lambda p: dict(denoise=0.0) if p["denoise"] > 0.1 else None,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("per_film")
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--scratch", default=str(ROOT / "target" / "photosim2-val" / "seed2024"))
    ap.add_argument("--data", default=os.environ.get("CXR_DATA", "/work/shared/cxr"))
    ap.add_argument("--digital", default="normal")
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "cxr-edge"))
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    films = [r for r in map(json.loads, open(a.per_film))
             if r["fully_in_frame"] and r["photo"] and r["digital"] == a.digital]
    recs = {}
    for f in Path(a.scratch).glob("*.jpg.json"):
        j = json.loads(f.read_text())
        recs[j["path"]] = (f.name[:-len(".json")], j["params"])
    jobs = []
    for r in films:
        name, p0 = recs[r["path"]]
        img = np.asarray(Image.open(Path(a.data) / r["path"]).convert("L"))
        for eff, off in OFF.items():
            o = off(p0)
            if o is None:
                continue
            dst = out / f"{eff}__{name}"
            dst.write_bytes(photosim2.render(img, 0, 0, params={**p0, **o})[0])
            jobs.append((r["path"], eff, str(dst)))
    got = {path: r.get("label") for path, r in
           classify(a.bin, a.model, None, "film-photo", [j[2] for j in jobs], None, 2).items()}
    on = {r["path"]: r["photo"] for r in films}
    tab: dict = defaultdict(Counter)
    for path, eff, dst in jobs:
        lab = got.get(dst)
        if lab is None:
            tab[eff]["refused_without"] += 1
            continue
        t = tab[eff]
        t["n"] += 1
        t["same_with"] += on[path] == a.digital
        t["same_without"] += lab == a.digital
        t["covid_with"] += on[path] == "covid"
        t["covid_without"] += lab == "covid"
    (out / "counterfactual.json").write_text(json.dumps(
        dict(films=len(films), table=tab, jobs=[(p, e, got.get(d)) for p, e, d in jobs]), indent=1))
    print(f"{len(films)} films read {a.digital!r} digitally, {len(jobs)} renders")
    print("| effect switched off | classified both ways | photo = digital: with / without | "
          "'covid': with / without | refused without |")
    print("|---|---|---|---|---|")
    for eff, t in tab.items():
        print(f"| {eff} | {t['n']} | {t['same_with']} / {t['same_without']} | "
              f"{t['covid_with']} / {t['covid_without']} | {t['refused_without']} |")


if __name__ == "__main__":
    main()
