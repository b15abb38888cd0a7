"""Train CxrNet from scratch on the train split; select on val (macro one-vs-rest AUC).

usage: python train.py --size 160 --epochs 18 --out runs/final [--subset N] [--val-subset N]
Writes OUT/last.pt, OUT/best.pt (state dict + meta), OUT/log.jsonl.
Deterministic: fixed seeds, torch.use_deterministic_algorithms(True), augmentation rng keyed
by (seed, epoch, position) so results do not depend on DataLoader workers.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cxr import LABELS  # noqa: E402
from cxr.data import (BalancedSampler, TrainSet, clean_tensors, load_images,  # noqa: E402
                      load_manifest, load_photos, split_rows, subset_rows)
from cxr.metrics import auc  # noqa: E402
from cxr.model import CxrNet  # noqa: E402
from cxr.preprocess import PREPROCESS_IDS  # noqa: E402


class _Reverse(torch.autograd.Function):
    """Gradient reversal: identity forward, -lambda * gradient backward (Ganin & Lempitsky 2015)."""

    @staticmethod
    def forward(ctx, x, lam):
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return -ctx.lam * g, None


class SourceAdversary(torch.nn.Module):
    """Recipe v2: predicts an image's source from the pooled features *given its class* (one
    linear head per class), through a gradient reversal, so the features are pushed to carry no
    more about the collection than the class itself does. Training only: not exported."""

    def __init__(self, n_feat, n_classes, n_sources):
        super().__init__()
        self.n_sources = n_sources
        self.lin = torch.nn.Linear(n_feat, n_classes * n_sources)

    def forward(self, pooled, y, lam):
        z = self.lin(_Reverse.apply(pooled, lam)).view(len(y), -1, self.n_sources)
        return z[torch.arange(len(y)), y]


def collate(batch):
    xs = torch.from_numpy(np.stack([b[0] for b in batch]))
    ys = torch.tensor([b[1] for b in batch], dtype=torch.long)
    idx = torch.tensor([b[2] for b in batch], dtype=torch.long)
    if len(batch[0]) == 3:
        return xs, ys, idx, None, None
    mask = torch.tensor([b[4] for b in batch], dtype=torch.bool)
    xc = torch.from_numpy(np.stack([b[3] for b in batch if b[4]])) if mask.any() else None
    return xs, ys, idx, xc, mask


def js_divergence(za, zb):
    """Mean Jensen-Shannon divergence between the softmax of two logit batches (AugMix's
    consistency term, Hendrycks et al. 2020), bounded by ln 2."""
    pa, pb = F.softmax(za, 1), F.softmax(zb, 1)
    m = ((pa + pb) / 2).clamp(1e-7, 1).log()
    return (F.kl_div(m, pa, reduction="batchmean") + F.kl_div(m, pb, reduction="batchmean")) / 2


class GroupDRO:
    """Online group DRO (Sagawa et al. 2020, "Distributionally robust neural networks"): one
    group per (class, source) cell of the training rows; each step raises the weight of every
    group in the batch by exp(eta * its mean loss), and the loss is the weighted mean of the
    groups' losses in the batch, so the cells the net does worst on (say, the few adult
    pneumonia films among the paediatric ones) count most."""

    def __init__(self, rows, eta):
        cells = sorted({(r["y"], r["source"]) for r in rows})
        index = {c: i for i, c in enumerate(cells)}
        self.names = [f"{LABELS[y]}/{s}" for y, s in cells]
        self.group_of = torch.tensor([index[(r["y"], r["source"])] for r in rows])
        self.q = torch.full((len(cells),), 1.0 / len(cells), dtype=torch.float64)
        self.eta = eta

    def loss(self, per_item, rows_idx):
        g = self.group_of[rows_idx]
        present = torch.unique(g)
        means = torch.stack([per_item[g == k].mean() for k in present])
        self.q[present] *= torch.exp(self.eta * means.detach().double())
        self.q /= self.q.sum()
        w = self.q[present].float()
        return (w * means).sum() / w.sum()


def evaluate(net, xv, yv, bs=128):
    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(xv), bs):
            out.append(net(torch.from_numpy(xv[i:i + bs]))[0].numpy())
    z = np.concatenate(out)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    aucs = [auc(yv == c, p[:, c]) for c in range(len(LABELS))]
    acc = float((p.argmax(1) == yv).mean())
    loss = float(-np.mean(np.log(np.clip(p[np.arange(len(yv)), yv], 1e-12, 1))))
    return aucs, acc, loss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--epochs", type=int, default=18)
    ap.add_argument("--bs", type=int, default=48)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--wd", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=20241130)
    ap.add_argument("--subset", type=int, default=None, help="use a stratified subset of train")
    ap.add_argument("--val-subset", type=int, default=None)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-steps", type=int, default=None, help="stop early (speed test)")
    ap.add_argument("--photos", default=None,
                    help="folder of examples/photo_dump.rs output (device-path camera photos)")
    ap.add_argument("--p-photo", type=float, default=0.3,
                    help="share of training items drawn from --photos")
    ap.add_argument("--preprocess", default="cxr-area-v1", choices=PREPROCESS_IDS)
    ap.add_argument("--mean", type=float, default=0.5)
    ap.add_argument("--std", type=float, default=0.25)
    ap.add_argument("--p-cue", type=float, default=0.0,
                    help="share of items through cue_augment (borders, burned-in text, flips, turns)")
    ap.add_argument("--p-phone", type=float, default=0.0,
                    help="share of camera-augmented items also through phone_augment (local tone "
                         "map, sharpening, haze, banding)")
    ap.add_argument("--p-style", type=float, default=0.0,
                    help="share of chest items given another source's grey levels, sharpness and "
                         "grain (style_augment) before the other augmentation")
    ap.add_argument("--source-alpha", type=float, default=None,
                    help="inside a class, draw each source as count**alpha (default: as v1, alpha 1)")
    ap.add_argument("--adv-source", type=float, default=0.0,
                    help="weight of the class-conditional source adversary (gradient reversal)")
    ap.add_argument("--last-stride", type=int, default=2, choices=(1, 2),
                    help="1: the last stage keeps the third's resolution (10x10 CAM at 160 px)")
    ap.add_argument("--exclude-source", default="",
                    help="comma-separated sources left out of train AND val (leave-one-source-out "
                         "folds: the held-out source must not steer model selection either)")
    ap.add_argument("--pair", type=float, default=0.0,
                    help="recipe v1+pair: weight of the divergence (--pair-loss) pulling a photo's "
                         "or camera augmentation's prediction towards a clean view of the same film")
    ap.add_argument("--pair-loss", default="js", choices=("js", "kl"),
                    help="js: symmetric Jensen-Shannon (both views move); kl: KL from the clean "
                         "view's prediction, held fixed, to the photo's (only the photo moves)")
    ap.add_argument("--group-dro", type=float, default=0.0,
                    help="recipe v1+dro: online group DRO over (class, source) cells with this "
                         "step size (0 = off)")
    ap.add_argument("--ema", type=float, default=0.0,
                    help="recipe v1+ema: keep an exponential moving average of the weights and "
                         "batch-norm statistics with this decay per step, and select, save and "
                         "export the average instead of the last weights (0 = off)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    if sum(x > 0 for x in (a.pair, a.adv_source, a.group_dro)) > 1:
        sys.exit("--pair, --adv-source and --group-dro cannot be combined (one training step each)")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    np.random.seed(a.seed % 2**32)
    torch.use_deterministic_algorithms(True)
    # CPU convs are deterministic; NaN-filling of fresh tensors costs ~20% and is not needed
    torch.utils.deterministic.fill_uninitialized_memory = False
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    rows = load_manifest()
    excluded = {x for x in a.exclude_source.split(",") if x}
    unknown = excluded - {r["source"] for r in rows}
    if unknown:
        sys.exit(f"--exclude-source: no such source in the manifest: {sorted(unknown)}")
    rows = [r for r in rows if r["source"] not in excluded]
    tr = subset_rows(split_rows(rows, "train"), a.subset, a.seed)
    va = subset_rows(split_rows(rows, "val"), a.val_subset, a.seed)
    t0 = time.time()
    tr_imgs = load_images(tr)
    va_imgs = load_images(va)
    xv = clean_tensors(va, va_imgs, a.size, a.mean, a.std, a.preprocess)
    yv = np.array([r["y"] for r in va])
    print(f"loaded {len(tr)} train / {len(va)} val in {time.time()-t0:.1f}s", flush=True)

    photos = load_photos(a.photos, tr, a.size) if a.photos else None
    if photos is not None:
        print(f"photos: {sum(len(v) for v in photos.values())} for {len(photos)} of {len(tr)} "
              f"train rows, p_photo {a.p_photo}", flush=True)
    ds = TrainSet(tr, tr_imgs, a.size, a.mean, a.std, a.seed, photos=photos,
                  p_photo=a.p_photo if photos else 0.0, preprocess=a.preprocess, p_cue=a.p_cue,
                  p_phone=a.p_phone, p_style=a.p_style, pair=a.pair > 0)
    sampler = BalancedSampler(tr, a.seed, source_alpha=a.source_alpha)
    dl = torch.utils.data.DataLoader(ds, batch_size=a.bs, sampler=sampler, num_workers=a.workers,
                                     collate_fn=collate, drop_last=True,
                                     persistent_workers=a.workers > 0,
                                     prefetch_factor=4 if a.workers > 0 else None)
    net_args = {} if a.last_stride == 2 else {"last_stride": a.last_stride}
    net = CxrNet(**net_args).to(memory_format=torch.channels_last)
    params = list(net.parameters())
    adv, src_index = None, {}
    if a.adv_source > 0:
        src_index = {s: i for i, s in enumerate(sorted({r["source"] for r in tr}))}
        adv = SourceAdversary(net.n_feat, len(LABELS), len(src_index))
        params += list(adv.parameters())
    src_of = torch.tensor([src_index.get(r["source"], 0) for r in tr], dtype=torch.long)
    dro = GroupDRO(tr, a.group_dro) if a.group_dro > 0 else None
    ema = None
    if a.ema > 0:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
        ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(a.ema), use_buffers=True)
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=a.wd)
    steps_per_epoch = len(sampler) // a.bs
    total = steps_per_epoch * a.epochs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=total, pct_start=0.15,
                                                div_factor=20, final_div_factor=200)
    meta = dict(size=a.size, mean=a.mean, std=a.std, preprocess=a.preprocess, p_cue=a.p_cue, p_phone=a.p_phone, p_style=a.p_style,
                source_alpha=a.source_alpha, adv_source=a.adv_source, pair=a.pair, pair_loss=a.pair_loss, group_dro=a.group_dro, ema=a.ema, seed=a.seed, epochs=a.epochs, bs=a.bs, lr=a.lr,
                subset=a.subset, labels=LABELS, excluded_sources=sorted(excluded),
                photos=(a.p_photo if photos else None), net=net_args)
    best = -1.0
    log = open(out / "log.jsonl", "a")
    step = 0
    t_train = time.time()
    for ep in range(a.epochs):
        sampler.set_epoch(ep)
        net.train()
        te = time.time()
        tl, n = 0.0, 0
        for xb, yb, ib, xc, mask in dl:
            xb = xb.contiguous(memory_format=torch.channels_last)
            if xc is not None:
                # one pass over both views, so batch statistics see them together
                z, _ = net(torch.cat([xb, xc]).contiguous(memory_format=torch.channels_last))
                logits = z[:len(xb)]
                zc = z[len(xb):]
                if a.pair_loss == "js":
                    cons = js_divergence(logits[mask], zc)
                else:
                    cons = F.kl_div(F.log_softmax(logits[mask], 1), F.log_softmax(zc.detach(), 1),
                                    reduction="batchmean", log_target=True)
                loss = F.cross_entropy(logits, yb, label_smoothing=0.05) + a.pair * cons
            elif dro is not None:
                logits, _ = net(xb)
                loss = dro.loss(F.cross_entropy(logits, yb, label_smoothing=0.05, reduction="none"), ib)
            elif adv is None:
                logits, _ = net(xb)
                loss = F.cross_entropy(logits, yb, label_smoothing=0.05)
            else:
                f = net.features(xb)
                logits = net.head(net.drop(f)).mean(dim=(2, 3))
                # DANN ramp: the adversary's pull grows from 0 as training settles
                lam = a.adv_source * (2.0 / (1.0 + math.exp(-10.0 * step / total)) - 1.0)
                zs = adv(f.mean(dim=(2, 3)), yb, lam)
                loss = F.cross_entropy(logits, yb, label_smoothing=0.05) + F.cross_entropy(zs, src_of[ib])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if ema is not None:
                ema.update_parameters(net)
            tl += float(loss) * len(yb)
            n += len(yb)
            step += 1
            if step % 20 == 0:
                print(f"ep {ep} step {step}/{total} loss {tl/n:.4f} {n/(time.time()-te):.1f} img/s", flush=True)
            if a.max_steps and step >= a.max_steps:
                break
        dt = time.time() - te
        # with --ema the average is what is judged, kept and exported
        kept = ema.module if ema is not None else net
        aucs, acc, vloss = evaluate(kept, xv, yv)
        score = float(np.nanmean(aucs))
        rec = dict(epoch=ep, train_loss=tl / max(n, 1), val_auc=dict(zip(LABELS, aucs)), val_acc=acc,
                   val_nll=vloss, val_macro_auc=score, epoch_s=dt, img_s=n / dt,
                   lr=sched.get_last_lr()[0], elapsed_s=time.time() - t_train)
        if dro is not None:
            rec["dro_weights"] = {name: round(float(w), 4) for name, w in zip(dro.names, dro.q)}
        print(json.dumps(rec), flush=True)
        log.write(json.dumps(rec) + "\n")
        log.flush()
        ck = dict(state=kept.state_dict(), meta=meta, epoch=ep, val=rec)  # adversary not kept
        torch.save(ck, out / "last.pt")
        if score > best:
            best = score
            torch.save(ck, out / "best.pt")
        if a.max_steps and step >= a.max_steps:
            break
    total_s = time.time() - t_train
    json.dump(dict(train_s=total_s, best_val_macro_auc=best, meta=meta), open(out / "summary.json", "w"), indent=1)
    print(f"done in {total_s:.0f}s best {best:.4f}", flush=True)


if __name__ == "__main__":
    main()
