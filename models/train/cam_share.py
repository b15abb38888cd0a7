"""Where the class activation map puts its mass: a measured shortcut figure for the model card.

usage: python cam_share.py --model-dir models [--out models/card/cam] [--split test] [--dense]
                           [--montage PATH]

`--dense` measures the 10x10 map the same weights give when the last stride is taken out
(`cxr/densecam.py`: its even rows and columns are the shipped 5x5 map, checked on every film);
the predicted class still comes from the shipped graph. `--montage` draws the maps of 16 fixed
test films (the picks of `evaluate.py`'s montage).

For every chest film of the split (labels covid, pneumonia, normal), the CAM of the predicted
chest class is clipped at 0, upsampled bilinearly to the input size and normalised to a total of 1.
Reported (mean over films, with the share of the image each region covers, i.e. what a map
spread evenly would give):
- outside the central thorax box (x 15-85%, y 8-92% of the squashed film: the region that holds
  the lungs on a frontal film framed as in these collections);
- the mediastinum strip (x 42-58%) and the bottom band (y > 80%, diaphragm and upper abdomen),
  the places the v1 maps were seen to favour;
- on burned-in text: the same films with 1-3 text stamps drawn where we know (cue_augment's
  text), share of mass inside the stamps' boxes against their share of the area.
No anatomy model is used: the boxes are fixed fractions, which is crude but identical for every
model compared, so the figure ranks models, it does not certify them.
"""
from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cxr.augment import _random_text  # noqa: E402
from cxr.data import load_images, load_manifest, split_rows  # noqa: E402
from cxr.densecam import check_even, densify  # noqa: E402
from cxr.ortrun import session  # noqa: E402
from cxr.preprocess import tensor_for  # noqa: E402
from cxr.report import write_card_files  # noqa: E402

SEED = 20261203


def regions(s):
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64)
    xx, yy = (xx + 0.5) / s, (yy + 0.5) / s
    thorax = (xx >= 0.15) & (xx <= 0.85) & (yy >= 0.08) & (yy <= 0.92)
    return {"outside central thorax": ~thorax, "mediastinum strip": (xx >= 0.42) & (xx <= 0.58),
            "bottom band": yy > 0.80}


def upsample(cam, s):
    """Bilinear (align_corners=False) upsampling of a k x k map to s x s, via PIL float images."""
    return np.asarray(Image.fromarray(cam.astype(np.float32), mode="F").resize((s, s), Image.Resampling.BILINEAR),
                      dtype=np.float64)


def stamp(img, rng):
    """1-3 text stamps; returns the image and a boolean mask (image coordinates) of their boxes."""
    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    h, w = img.shape
    mask = np.zeros((h, w), dtype=bool)
    for _ in range(int(rng.integers(1, 4))):
        size = max(8, int(min(h, w) * rng.uniform(0.05, 0.12)))
        font = ImageFont.load_default(size=size)
        tx, ty = int(rng.uniform(0, 0.8) * w), int(rng.uniform(0, 0.9) * h)
        text = _random_text(rng)
        x0, y0, x1, y1 = d.textbbox((tx, ty), text, font=font)
        d.text((tx, ty), text, fill=255, font=font)
        mask[max(0, y0):min(h, y1), max(0, x0):min(w, x1)] = True
    return np.asarray(im, dtype=np.float32), mask


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", default=str(HERE.parent))
    ap.add_argument("--split", default="test")
    ap.add_argument("--out", default=None)
    ap.add_argument("--dense", action="store_true", help="the 10x10 map of the same weights (module notes)")
    ap.add_argument("--montage", default=None, help="write a montage of 16 fixed films' maps here")
    a = ap.parse_args()
    md = Path(a.model_dir)
    man = tomllib.loads((md / "cxr-net.toml").read_text())
    labels, inp = man["labels"], man["input"]
    s = inp["width"]
    f32 = md / man["variants"]["f32"]["file"]
    sess = session(f32, threads=2)
    dense = None
    if a.dense:
        import onnx
        dense = session(densify(onnx.load(str(f32))).SerializeToString(), threads=2)
    rows = [r for r in split_rows(load_manifest(), a.split) if r["label"] != "other"]
    imgs = load_images(rows)
    reg = regions(s)
    chest = [labels.index(l) for l in labels if l != "other"]
    acc = {k: [] for k in reg}
    text_in, text_area = [], []
    cam_side = None
    even_diff = 0.0
    kept_x, kept_cam, kept_p = [], [], []
    for i, im in enumerate(imgs):
        for stamped in (False, True):
            g = im.astype(np.float32)
            if stamped:
                g, mask_img = stamp(g, np.random.default_rng([SEED, i]))
            x = tensor_for(inp["preprocess"], g, s, inp["mean"], inp["std"])
            z, cam = sess.run(["logits", "cam"], {"image": x})
            k = chest[int(np.argmax(z[0][chest]))]
            if dense is not None:
                (dc,) = dense.run(["cam"], {"image": x})
                even_diff = max(even_diff, check_even(dc, cam))
                cam = dc
            if a.montage and not stamped:
                p = np.exp(z[0] - z[0].max())
                kept_x.append(x[0]), kept_cam.append(cam[0]), kept_p.append(p / p.sum())
            c = np.maximum(cam[0][k], 0)
            cam_side = c.shape[-1]
            m = upsample(c, s)
            tot = m.sum()
            if tot <= 0:
                continue
            m /= tot
            if not stamped:
                for name, r in reg.items():
                    acc[name].append(float(m[r].sum()))
            else:
                # the stamps' boxes, squashed to the input size like the film
                mk = np.asarray(Image.fromarray(mask_img.astype(np.uint8) * 255).resize((s, s), Image.Resampling.BOX)) > 127
                if mk.any():
                    text_in.append(float(m[mk].sum()))
                    text_area.append(float(mk.mean()))
    res = {"model": man["variants"]["f32"]["sha256"][:12], "cam": f"{cam_side}x{cam_side}", "films": len(rows),
           "split": a.split}
    if dense is not None:
        res["dense"] = dict(method="last stride removed, later convs dilated (cxr/densecam.py)",
                            max_diff_even_positions=even_diff)
    if a.montage:
        from evaluate import montage
        res["montage"] = montage(rows, np.stack(kept_x), np.stack(kept_cam), np.stack(kept_p), inp["mean"],
                                 inp["std"], a.montage)
    for name, r in reg.items():
        res[name] = dict(cam_share=float(np.mean(acc[name])), area_share=float(r.mean()))
    res["burned-in text"] = dict(cam_share=float(np.mean(text_in)), area_share=float(np.mean(text_area)),
                                 films=len(text_in))
    md_ = [f"CAM mass of the predicted chest class ({res['cam']} map, {a.split} chest films, n={len(rows)}):", "",
           "| region | share of CAM mass | share of the image |", "|---|---|---|"]
    for name in list(reg) + ["burned-in text"]:
        md_.append(f"| {name} | {100 * res[name]['cam_share']:.1f}% | {100 * res[name]['area_share']:.1f}% |")
    table = "\n".join(md_) + "\n"
    print(table)
    if a.out:
        write_card_files(a.out, "cam_share_dense" if a.dense else "cam_share", res, table)


if __name__ == "__main__":
    main()
