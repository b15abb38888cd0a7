"""Compare models on the photo path, film by film, from photo_eval.py's per_film.jsonl files.

usage: python models/eval/photo_compare.py NAME=DIR [NAME=DIR ...] [--pair A,B ...] [--out FILE]
Each DIR is a photo_eval.py --out folder made on the SAME renders (e.g. --split val --limit 300
--scratch target/photosim2-val), so the films and the finder's crops are the same for every
model and only the model's answers differ. For each model: agreement (photo label = digital
label) on films fully in frame (a refused photo counts as disagreement), among the photos the
finder classified, among those whose worst corner is within 5 px, per source, and how often a
film read "normal" digitally reads "covid" on its photo; and, on the classified photos, how many
answers match the collection's label on each path (agreement alone rewards a model that leans
the same way on both paths: one that calls more films "covid" digitally agrees more with photos
that push towards "covid"). For each --pair A,B: the films both classified, and the discordant
ones (only A agrees / only B agrees) with an exact two-sided McNemar p-value, and the same for
photo answers that match the label. Val renders only: photosim2 is never used for training, and
choices are made on val renders, never on test renders (models/eval/README.md).
"""
from __future__ import annotations

import argparse
import json
import math
from collections import Counter, defaultdict
from pathlib import Path

SOURCES = ("c19rad", "kermany", "nih", "ieee8023")


def load(d):
    with open(Path(d) / "per_film.jsonl") as f:
        return {r["path"]: r for r in map(json.loads, f)}


def agrees(r):
    return r["photo"] is not None and r["photo"] == r["digital"]


def summary(films):
    fi = [r for r in films.values() if r["fully_in_frame"]]
    cl = [r for r in fi if r["photo"] is not None]
    near = [r for r in cl if r["corner_error_px"] is not None and r["corner_error_px"] <= 5]
    by_src = defaultdict(lambda: [0, 0])
    for r in cl:
        by_src[r["source"]][0] += agrees(r)
        by_src[r["source"]][1] += 1
    flips = Counter((r["digital"], r["photo"]) for r in cl if not agrees(r))
    return dict(fully_in_frame=[sum(map(agrees, fi)), len(fi)], classified=[sum(map(agrees, cl)), len(cl)],
                within_5px=[sum(map(agrees, near)), len(near)],
                by_source={s: by_src[s] for s in SOURCES if s in by_src},
                normal_to_covid=flips[("normal", "covid")],
                digital_right=[sum(r["digital"] == r["label"] for r in cl), len(cl)],
                photo_right=[sum(map(photo_right, cl)), len(cl)])


def photo_right(r):
    return r["photo"] is not None and r["photo"] == r["label"]


def mcnemar_p(b, c):
    """Exact two-sided binomial test of b against b + c at p = 0.5."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def versus(test, a, b, both):
    """Counts of `test` for A and for B on the films `both`, the discordant ones and McNemar's p."""
    only_a = sum(test(a[p]) and not test(b[p]) for p in both)
    only_b = sum(test(b[p]) and not test(a[p]) for p in both)
    return (sum(test(a[p]) for p in both), sum(test(b[p]) for p in both), only_a, only_b,
            mcnemar_p(only_a, only_b))


def paired(a, b):
    both = [p for p in a if a[p]["fully_in_frame"] and a[p]["photo"] is not None
            and p in b and b[p]["photo"] is not None]
    keys = ("agree_a", "agree_b", "only_a", "only_b", "mcnemar_p")
    right = ("photo_right_a", "photo_right_b", "photo_right_only_a", "photo_right_only_b",
             "photo_right_mcnemar_p")
    return dict(films=len(both), **dict(zip(keys, versus(agrees, a, b, both))),
                **dict(zip(right, versus(photo_right, a, b, both))))


def frac(x):
    return f"{x[0]}/{x[1]} ({x[0] / x[1]:.3f})" if x[1] else "-"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+", metavar="NAME=DIR")
    ap.add_argument("--pair", action="append", default=[], metavar="A,B")
    ap.add_argument("--out", default=None, help="write FILE.md and FILE.json")
    a = ap.parse_args()
    films = {}
    for m in a.models:
        name, sep, d = m.partition("=")
        if not sep:
            ap.error(f"{m!r}: expected NAME=DIR")
        films[name] = load(d)
    res = {"models": {n: summary(f) for n, f in films.items()}, "pairs": {}}
    for p in a.pair:
        x, _, y = p.partition(",")
        if x not in films or y not in films:
            ap.error(f"--pair {p}: both names must be among the models")
        res["pairs"][p] = paired(films[x], films[y])
    md = ["| model | fully in frame | classified | within 5 px | " + " | ".join(SOURCES)
          + " | normal -> covid | digital = label | photo = label |",
          "|---|---|---|---|" + "---|" * len(SOURCES) + "---|---|---|"]
    for n, s in res["models"].items():
        md.append(f"| {n} | {frac(s['fully_in_frame'])} | {frac(s['classified'])} | {frac(s['within_5px'])} | "
                  + " | ".join(f"{s['by_source'][k][0]}/{s['by_source'][k][1]}" if k in s["by_source"] else "-"
                               for k in SOURCES)
                  + f" | {s['normal_to_covid']} | {s['digital_right'][0]} | {s['photo_right'][0]} |")
    if res["pairs"]:
        md += ["", "| pair A, B | films both classified | A agrees | B agrees | only A | only B | McNemar p "
               "| photo = label: A / B (only A / only B) | McNemar p |",
               "|---|---|---|---|---|---|---|---|---|"]
        for p, r in res["pairs"].items():
            md.append(f"| {p} | {r['films']} | {r['agree_a']} | {r['agree_b']} | {r['only_a']} | {r['only_b']} | "
                      f"{r['mcnemar_p']:.3g} | {r['photo_right_a']} / {r['photo_right_b']} "
                      f"({r['photo_right_only_a']} / {r['photo_right_only_b']}) | {r['photo_right_mcnemar_p']:.3g} |")
    text = "\n".join(md) + "\n"
    print(text)
    if a.out:
        Path(a.out + ".md").write_text(text)
        Path(a.out + ".json").write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
