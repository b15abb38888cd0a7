"""Fill the generated sections of models/MODEL_CARD.md (between the AUTO markers) from
card/results.md, card/calibration.json, card/size_sweep.json and the training log.

usage: python make_card.py --card ../MODEL_CARD.md --work runs/final --results ../card
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

BEGIN, END = "<!-- BEGIN AUTO RESULTS (make_card.py) -->", "<!-- END AUTO RESULTS -->"


def training_md(work: Path):
    out = []
    s = work / "summary.json"
    if s.exists():
        sm = json.loads(s.read_text())
        m = sm["meta"]
        lg = work / "log.jsonl"
        ips = [json.loads(l)["img_s"] for l in lg.read_text().splitlines()] if lg.exists() else []
        speed = f" (mean {sum(ips)/len(ips):.1f} img/s; less while other work shares the cores)" if ips else ""
        photos = (f", {m['photos']:.0%} of the draws from device-path photos"
                  if m.get("photos") else ", no device-path photos")
        out.append(f"Training: {m['epochs']} epochs, batch {m['bs']}, AdamW one-cycle max lr {m['lr']}, input {m['size']}x{m['size']}{photos}, "
                   f"seed {m['seed']}; wall time {sm['train_s']/60:.1f} min on this 2-core machine{speed}; "
                   f"best val macro AUC {sm['best_val_macro_auc']:.4f}.")
        out.append("")
    lg = work / "log.jsonl"
    if lg.exists():
        out += ["| epoch | train loss | val NLL | val AUC covid | pneumonia | normal | other | val acc | img/s |",
                "|---|---|---|---|---|---|---|---|---|"]
        for l in lg.read_text().splitlines():
            r = json.loads(l)
            a = r["val_auc"]
            out.append(f"| {r['epoch']} | {r['train_loss']:.4f} | {r['val_nll']:.4f} | {a['covid']:.4f} | {a['pneumonia']:.4f} | "
                       f"{a['normal']:.4f} | {a['other']:.4f} | {r['val_acc']:.3f} | {r['img_s']:.1f} |")
        out.append("")
    return "\n".join(out)


def sweep_md(p: Path):
    if not p.exists():
        return ""
    d = json.loads(p.read_text())
    su = d["setup"]
    out = [f"Input-size comparison (`size_sweep.py`: {su['epochs']} epochs on a {su['subset']}-image stratified train subset, "
           f"val subset {su['val_subset']}, same seed; latency = onnxruntime, 1 thread, median of 50, this x86 machine; "
           f"{d.get('note','')}):", "",
           "| size | MACs | params | cam | val macro AUC (short run) | train img/s | ORT f32 ms | ORT int8 ms |",
           "|---|---|---|---|---|---|---|---|"]
    for s, r in d["results"].items():
        out.append(f"| {s} | {r['macs']/1e6:.0f} M | {r['params']/1e6:.2f} M | {r['cam'][0]}x{r['cam'][1]} | "
                   f"{r['val_macro_auc_last']:.4f} | {r['train_img_s']:.1f} | {r['ort_f32_ms_1thread']:.2f} | {r['ort_int8_ms_1thread']:.2f} |")
    return "\n".join(out) + "\n"


def calib_md(p: Path):
    if not p.exists():
        return ""
    c = json.loads(p.read_text())
    out = [f"Temperature T = {c['temperature']:.4f} fitted on {c['fitted_on']} (NLL {c['val_nll_before']:.4f} -> "
           f"{c['val_nll_after']:.4f}; ECE {c['val_ece_before']:.4f} -> {c['val_ece_after']:.4f}).", "",
           "| class | threshold | rule | val sens | val spec | val PPV |", "|---|---|---|---|---|---|"]
    rules = {"covid": "highest t with val sensitivity >= 0.90", "other": "highest t with val recall >= 0.99",
             "pneumonia": "Youden's J max on val", "normal": "Youden's J max on val"}
    for l, t in c["thresholds"].items():
        out.append(f"| {l} | {t['threshold']:.4f} | {rules[l]} | {t['val_sens']:.3f} | {t['val_spec']:.3f} | {t['val_ppv']:.3f} |")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--card", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--results", required=True)
    a = ap.parse_args()
    res = Path(a.results)
    body = "\n".join(["## Generated results", "",
                      "Everything in this section is written by `models/train/run.sh` (via `make_card.py`); the",
                      "numbers come from `models/card/results.json` / `calibration.json` / `size_sweep.json`.", "",
                      "### Input size", "", sweep_md(res / "size_sweep.json"),
                      "### Training", "", training_md(Path(a.work)),
                      "### Calibration and operating points (val)", "", calib_md(res / "calibration.json"),
                      (res / "results.md").read_text() if (res / "results.md").exists() else ""])
    card = Path(a.card)
    txt = card.read_text() if card.exists() else f"# cxr-net model card\n\n{BEGIN}\n{END}\n"
    if BEGIN not in txt:
        txt += f"\n{BEGIN}\n{END}\n"
    pre, rest = txt.split(BEGIN, 1)
    _, post = rest.split(END, 1)
    card.write_text(pre + BEGIN + "\n" + body + "\n" + END + post)
    print(f"updated {card}")


if __name__ == "__main__":
    main()
