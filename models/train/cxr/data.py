"""Manifest loading, in-memory image cache, training dataset (deterministic augmentation)."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from . import LABELS
from .augment import camera_augment, cue_augment, grey_cdf, light_augment, phone_augment, style_augment
from .preprocess import decode, finish, tensor_for

DATA_ROOT = Path(os.environ.get("CXR_DATA", "/work/shared/cxr"))


def load_manifest(root: Path = DATA_ROOT):
    with open(root / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["y"] = LABELS.index(r["label"])
        r["abspath"] = str(root / r["path"])
    return rows


def split_rows(rows, split):
    return [r for r in rows if r["split"] == split]


def subset_rows(rows, n, seed):
    """Stratified (by label) deterministic subset of about n rows."""
    if n is None or n >= len(rows):
        return rows
    rng = np.random.default_rng([seed, 777])
    out = []
    for y in range(len(LABELS)):
        idx = [i for i, r in enumerate(rows) if r["y"] == y]
        k = max(2, int(round(n * len(idx) / len(rows))))
        sel = sorted(rng.choice(len(idx), size=min(k, len(idx)), replace=False).tolist())
        out += [rows[idx[i]] for i in sel]
    return sorted(out, key=lambda r: r["path"])


def load_images(rows):
    """Decode every image once (float32 [0,255] would be 4x bigger; keep uint8-exact copies).
    Training data are 8-bit gray, so uint8 storage is lossless."""
    imgs = []
    for r in rows:
        g = decode(r["abspath"])
        imgs.append(np.round(g).astype(np.uint8))
    return imgs


def load_photos(folder, rows, size):
    """Device-path photos written by `examples/photo_dump.rs` (simulated camera frame -> finder ->
    rectify -> stretch -> area resize): {row index: uint16 array (k, size, size), value =
    pixel * 256}. Rows whose every variant the gates blocked are absent."""
    index = {r["path"]: i for i, r in enumerate(rows)}
    found: dict = {}
    files = sorted(Path(folder).glob("photos-*.csv"))
    if not files:
        raise FileNotFoundError(f"no photos-*.csv in {folder} (run examples/photo_dump.rs)")
    for f in files:
        data = np.fromfile(f.with_suffix(".u16"), dtype="<u2").reshape(-1, size, size)
        with open(f, newline="") as fh:
            for rec in csv.DictReader(fh):
                i = index.get(rec["path"])
                if rec["status"] == "ok" and i is not None:
                    found.setdefault(i, []).append(data[int(rec["record"])])
    return {i: np.stack(v) for i, v in found.items()}


class TrainSet:
    """Item key = (epoch, position, row index); rng = default_rng([seed, epoch, position]).

    Each item is, by chance: a clean image with light augmentation (p_clean), one of the row's
    device-path photos (p_photo, when `photos` are given), or the Python camera augmentation.
    Recipes add, before that: another source's grey levels, sharpness and grain on a chest film
    (p_style), borders, text, flips and turns (p_cue); and a phone's own processing after the
    camera augmentation (p_phone).

    With `pair` (recipe v1+pair), each item also carries a second, clean view of the same film
    (light augmentation, from its own rng stream so the first view's stream is unchanged) and a
    flag that is 1 when the first view is a photo or a camera augmentation: the training loop
    pulls the two views' predictions together."""

    def __init__(self, rows, imgs, size, mean, std, seed, p_clean=0.2, photos=None, p_photo=0.0,
                 preprocess="cxr-area-v1", p_cue=0.0, p_phone=0.0, p_style=0.0, pair=False):
        self.rows, self.imgs = rows, imgs
        self.pair = pair
        self.size, self.mean, self.std, self.seed = size, mean, std, seed
        self.p_clean = p_clean
        self.photos, self.p_photo = photos or {}, p_photo
        self.preprocess, self.p_cue, self.p_phone = preprocess, p_cue, p_phone
        self.p_style = p_style
        self.style_pool: dict = {}
        if p_style:
            # chest films only: each is given the grey levels of a chest film of another source
            chest = [j for j, r in enumerate(rows) if r["label"] != "other"]
            self.cdfs = {j: grey_cdf(imgs[j]) for j in chest}
            for src in {rows[j]["source"] for j in chest}:
                self.style_pool[src] = np.array([j for j in chest if rows[j]["source"] != src])

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, key):
        if not self.pair:
            return self._item(key)[:3]
        epoch, pos, i = key
        x, y, i, film, clean = self._item(key)
        if clean:
            return x, y, i, x, 0
        prng = np.random.default_rng([self.seed, epoch, pos, 1])
        xc = tensor_for(self.preprocess, light_augment(film, prng, self.size), self.size, self.mean,
                        self.std)[0]
        return x, y, i, xc, 1

    def _item(self, key):
        """(tensor, label, row, the film before the camera or photo step, whether the view is clean)"""
        epoch, pos, i = key
        rng = np.random.default_rng([self.seed, epoch, pos])
        if self.photos and rng.random() < self.p_photo and i in self.photos:
            ph = self.photos[i]
            v = ph[int(rng.integers(len(ph)))].astype(np.float32) / np.float32(256.0)
            return (finish(self.preprocess, v, self.mean, self.std)[None], self.rows[i]["y"], i,
                    self.imgs[i], False)
        img = self.imgs[i].astype(np.float32)
        pool = self.style_pool.get(self.rows[i]["source"]) if self.rows[i]["label"] != "other" else None
        # no number drawn when off (or for `other`), so other recipes' streams are unchanged
        if pool is not None and len(pool) and rng.random() < self.p_style:
            img = style_augment(img, self.cdfs[int(pool[int(rng.integers(len(pool)))])], rng)
        # v1 draws no number here, so its augmentation streams stay as they were
        if self.p_cue and rng.random() < self.p_cue:
            img = cue_augment(img, rng)
        film = img
        clean = rng.random() < self.p_clean
        if clean:
            img = light_augment(img, rng, self.size)
        else:
            img = camera_augment(img, rng, out_side=self.size)
            # as with p_cue: no number drawn when off, so other recipes' streams are unchanged
            if self.p_phone and rng.random() < self.p_phone:
                img = phone_augment(img, rng)
        x = tensor_for(self.preprocess, img, self.size, self.mean, self.std)[0]
        return x, self.rows[i]["y"], i, film, clean


class BalancedSampler:
    """Per epoch: len(rows) draws, classes equally likely, deterministic from (seed, epoch)."""

    def __init__(self, rows, seed, n_per_epoch=None, power=1.0, source_alpha=None):
        """source_alpha (recipe v2): inside each class, a source's share of the draws goes as
        count(class, source) ** source_alpha (1 = as many as it has, v1's behaviour; 0 = every
        source equally often; 0.5 = between), so the big collection of a class stops being what
        the class looks like."""
        self.y = np.array([r["y"] for r in rows])
        self.seed = seed
        self.n = n_per_epoch or len(rows)
        counts = np.bincount(self.y, minlength=len(LABELS)).astype(np.float64)
        w = 1.0 / np.maximum(counts[self.y], 1) ** power
        if source_alpha is not None:
            cell: dict = {}
            for r in rows:
                cell[(r["y"], r["source"])] = cell.get((r["y"], r["source"]), 0) + 1
            share = {}
            for y in set(self.y.tolist()):
                tot = sum(c ** source_alpha for (yy, _), c in cell.items() if yy == y)
                for (yy, src), c in cell.items():
                    if yy == y:
                        share[(y, src)] = c ** source_alpha / tot
            # class y gets 1/n_classes of the draws, cell (y, s) share[y, s] of those, split evenly
            w = np.array([share[(r["y"], r["source"])] / cell[(r["y"], r["source"])] for r in rows])
        self.p = w / w.sum()
        self.epoch = 0

    def set_epoch(self, e):
        self.epoch = e

    def __len__(self):
        return self.n

    def __iter__(self):
        rng = np.random.default_rng([self.seed, 99, self.epoch])
        idx = rng.choice(len(self.y), size=self.n, replace=True, p=self.p)
        return iter([(self.epoch, pos, int(i)) for pos, i in enumerate(idx)])


def clean_tensors(rows, imgs, size, mean, std, preprocess="cxr-area-v1"):
    return np.concatenate([tensor_for(preprocess, im.astype(np.float32), size, mean, std) for im in imgs], 0)
