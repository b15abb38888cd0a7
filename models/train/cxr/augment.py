"""Camera-style augmentation: a phone/camera looking at a film on a light box.

`camera_augment(img, rng)` works on a decoded gray float32 image in [0, 255] (before the
cxr-area-v1 resize) and returns another float32 image in [0, 255] (size may change).
It is used for training (rng = np.random.default_rng([seed, epoch, position])) and, with a
fixed seed per test image, for the robustness report. Deterministic given the rng.

Effects (each with some probability): light-box border + perspective + rotation (+-25 deg)
+ crop/zoom + aspect change, brightness/contrast/gamma, uneven light / vignetting, glare blobs,
defocus or motion blur, sensor noise, JPEG re-compression. No inversion (the app handles
negatives itself).
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image


def _homography(dst, src):
    """Coefficients for PIL PERSPECTIVE: maps output (dst) points to input (src) points."""
    a = []
    b = []
    for (x, y), (u, v) in zip(dst, src):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b += [u, v]
    return np.linalg.solve(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))


def _geometry(img, rng, strength, out_side=None):
    h, w = img.shape
    # output size: keep roughly the input area, random aspect change (hides size/aspect cues)
    asp = float(np.exp(rng.uniform(-0.15, 0.15)))
    if out_side:  # camera resolution relative to the network input (cheaper than full size)
        side = float(out_side) * rng.uniform(1.0, 1.6)
    else:
        side = float(np.sqrt(h * w)) * rng.uniform(0.8, 1.1)
    ow = int(np.clip(round(side * np.sqrt(asp)), 64, 400))
    oh = int(np.clip(round(side / np.sqrt(asp)), 64, 400))
    # source quad: crop/zoom (negative = film smaller than frame, shows light box)
    zoom = rng.uniform(0.85, 1.2) if rng.random() < 0.8 else 1.0
    cx = w / 2 + rng.uniform(-0.06, 0.06) * w
    cy = h / 2 + rng.uniform(-0.06, 0.06) * h
    hw, hh = w / 2 * zoom, h / 2 * zoom
    ang = np.deg2rad(rng.uniform(-25, 25) * strength) if rng.random() < 0.8 else 0.0
    ca, sa = np.cos(ang), np.sin(ang)
    pj = 0.08 * strength
    src = []
    for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        px = sx * hw + rng.uniform(-pj, pj) * w
        py = sy * hh + rng.uniform(-pj, pj) * h
        src.append((cx + ca * px - sa * py, cy + sa * px + ca * py))
    dst = [(0, 0), (ow, 0), (ow, oh), (0, oh)]
    coeffs = _homography(dst, src)
    # light box (bright) most of the time, sometimes a dark surround
    fill = float(rng.uniform(190, 255)) if rng.random() < 0.7 else float(rng.uniform(0, 60))
    pim = Image.fromarray(img.astype(np.float32), mode="F")
    out = pim.transform((ow, oh), Image.Transform.PERSPECTIVE, tuple(coeffs),
                        resample=Image.Resampling.BILINEAR, fillcolor=fill)
    return np.asarray(out, dtype=np.float32).copy()


def _blur(img, rng):
    if rng.random() < 0.5:  # defocus: gaussian-ish via PIL
        r = float(rng.uniform(0.5, 2.0))
        u8 = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
        from PIL import ImageFilter
        return np.asarray(u8.filter(ImageFilter.GaussianBlur(r)), dtype=np.float32)
    # motion: average of shifted copies along a random direction
    n = int(rng.integers(3, 10))
    th = rng.uniform(0, np.pi)
    dx, dy = np.cos(th), np.sin(th)
    pad = n
    p = np.pad(img, pad, mode="edge")
    acc = np.zeros_like(img)
    h, w = img.shape
    for t in np.linspace(-(n - 1) / 2, (n - 1) / 2, n):
        ox, oy = int(round(t * dx)), int(round(t * dy))
        acc += p[pad + oy: pad + oy + h, pad + ox: pad + ox + w]
    return acc / n


def camera_augment(img: np.ndarray, rng: np.random.Generator, strength: float = 1.0,
                   out_side: int | None = None) -> np.ndarray:
    x = img.astype(np.float32)
    # geometry (always some, it also hides the source's size and borders)
    x = _geometry(x, rng, strength, out_side)
    h, w = x.shape
    v = x / 255.0
    # brightness / contrast / gamma
    if rng.random() < 0.8:
        g = float(np.exp(rng.uniform(-0.4, 0.4)))
        v = np.clip(v, 0, 1) ** g
        c = rng.uniform(0.7, 1.25)
        b = rng.uniform(-0.12, 0.12)
        v = (v - 0.5) * c + 0.5 + b
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy /= h
    xx /= w
    # uneven light (gradient) and vignetting
    if rng.random() < 0.5:
        ang = rng.uniform(0, 2 * np.pi)
        grad = (np.cos(ang) * (xx - 0.5) + np.sin(ang) * (yy - 0.5))
        v = v * (1 + rng.uniform(0.1, 0.5) * grad)
    if rng.random() < 0.5:
        r2 = ((xx - 0.5 - rng.uniform(-0.15, 0.15)) ** 2 + (yy - 0.5 - rng.uniform(-0.15, 0.15)) ** 2)
        v = v * (1 - rng.uniform(0.2, 0.7) * r2 * 2)
    # glare blobs (specular reflections)
    if rng.random() < 0.35:
        for _ in range(int(rng.integers(1, 4))):
            gx, gy = rng.uniform(0, 1), rng.uniform(0, 1)
            s = rng.uniform(0.03, 0.2)
            amp = rng.uniform(0.15, 0.8)
            v = v + amp * np.exp(-(((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * s * s)))
    x = np.clip(v * 255.0, 0, 255).astype(np.float32)
    if rng.random() < 0.5:
        x = _blur(x, rng)
    # sensor noise (signal dependent + read noise)
    if rng.random() < 0.6:
        sig = rng.uniform(1, 8)
        x = x + rng.standard_normal(x.shape).astype(np.float32) * np.float32(sig) * np.sqrt(np.maximum(x, 16) / 128).astype(np.float32)
    x = np.clip(x, 0, 255)
    # JPEG re-compression
    if rng.random() < 0.6:
        q = int(rng.integers(25, 95))
        buf = io.BytesIO()
        Image.fromarray(np.round(x).astype(np.uint8)).save(buf, format="JPEG", quality=q)
        buf.seek(0)
        with Image.open(buf) as im:
            x = np.asarray(im.convert("L"), dtype=np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


def light_augment(img: np.ndarray, rng: np.random.Generator, out_side: int | None = None) -> np.ndarray:
    """Mild digital-only augmentation (small rotation/crop, contrast) for 'clean' samples."""
    x = _geometry(img.astype(np.float32), rng, 0.3, out_side)
    if rng.random() < 0.5:
        c = rng.uniform(0.85, 1.15)
        b = rng.uniform(-10, 10)
        x = (x - 127.5) * c + 127.5 + b
    return np.clip(x, 0, 255).astype(np.float32)


def _gauss(x, sigma):
    from scipy.ndimage import gaussian_filter
    return gaussian_filter(np.asarray(x, dtype=np.float32), float(sigma), mode="nearest")


def phone_augment(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What a phone's own processing does to a photo of a film (a candidate for the photo path,
    chosen on photosim2 val renders only): local tone mapping (the image minus a wide blur,
    amplified or flattened), sharpening halos (unsharp mask at a small radius), veiling haze from
    a smudged lens (the picture pulled towards its mean), and faint banding from flickering
    light. On a gray float32 image in [0, 255]; deterministic given rng; size unchanged."""
    x = img.astype(np.float32)
    h, w = x.shape
    if rng.random() < 0.6:  # local tone map
        base = _gauss(x, max(2.0, min(h, w) * rng.uniform(0.04, 0.15)))
        # the wide-scale light is compressed, the detail on top of it amplified
        m = np.float32(base.mean())
        x = m + (base - m) * np.float32(rng.uniform(0.5, 1.0)) + (x - base) * np.float32(rng.uniform(0.8, 2.2))
    if rng.random() < 0.5:  # sharpening halos
        x = x + (x - _gauss(x, rng.uniform(0.6, 1.6))) * np.float32(rng.uniform(0.3, 1.5))
    if rng.random() < 0.3:  # veiling haze
        k = np.float32(rng.uniform(0.05, 0.35))
        x = x * (1 - k) + k * np.float32(rng.uniform(x.mean(), 255.0))
    if rng.random() < 0.2:  # banding
        period = rng.uniform(6, 40)
        rows = np.sin(2 * np.pi * np.arange(h, dtype=np.float32) / np.float32(period) + np.float32(rng.uniform(0, 6.3)))
        x = x * (1 + np.float32(rng.uniform(0.01, 0.05)) * rows[:, None])
    return np.ascontiguousarray(np.clip(x, 0, 255), dtype=np.float32)


# Burned-in text a chest film may carry: side markers, projection, ward stamps, dates and ids.
_TEXT = ["L", "R", "AP", "PA", "PORTABLE", "SUPINE", "ERECT", "ICU", "AP SUPINE", "MOBILE",
         "L UPRIGHT", "INSP", "EXP", "SITTING", "1", "2", "ER"]


def _random_text(rng):
    k = rng.random()
    if k < 0.6:
        return _TEXT[int(rng.integers(len(_TEXT)))]
    if k < 0.8:  # a date or a time stamp
        return f"{int(rng.integers(1, 29)):02d}/{int(rng.integers(1, 13)):02d}/{int(rng.integers(2000, 2025))}"
    return "".join(chr(int(rng.integers(48, 58))) for _ in range(int(rng.integers(4, 10))))


def cue_augment(img: np.ndarray, rng: np.random.Generator, p_border=0.3, p_text=0.4, p_flip=0.3,
                p_turn=0.1) -> np.ndarray:
    """Make collection cues useless (recipe v2), on a decoded gray float32 image in [0, 255]:
    borders of random width and grey level on random sides (collimation, scanner margins,
    letterboxing), burned-in markers and text in random places, left-right flips and, rarely,
    turns up to 90 degrees (a film put on the light box sideways is still a chest film).
    Deterministic given rng; the label never changes."""
    from PIL import ImageDraw, ImageFont
    x = img.astype(np.float32)
    h, w = x.shape
    if rng.random() < p_flip:
        x = x[:, ::-1]
    if rng.random() < p_turn:
        ang = float(rng.uniform(-90, 90))
        fill = float(rng.choice([0.0, 255.0, float(np.median(x))]))
        x = np.asarray(Image.fromarray(np.ascontiguousarray(x), mode="F").rotate(
            ang, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=fill), dtype=np.float32)
        h, w = x.shape
    if rng.random() < p_border:
        x = x.copy()
        level = float(rng.choice([0.0, 255.0, rng.uniform(0, 255)]))
        for side in range(4):
            if rng.random() < 0.5:
                continue
            f = float(rng.uniform(0.02, 0.15))
            if side == 0:
                x[: int(h * f)] = level
            elif side == 1:
                x[h - int(h * f):] = level
            elif side == 2:
                x[:, : int(w * f)] = level
            else:
                x[:, w - int(w * f):] = level
    if rng.random() < p_text:
        im = Image.fromarray(np.clip(x, 0, 255).astype(np.uint8))
        d = ImageDraw.Draw(im)
        for _ in range(int(rng.integers(1, 4))):
            size = max(6, int(min(h, w) * rng.uniform(0.03, 0.12)))
            font = ImageFont.load_default(size=size)
            tx, ty = int(rng.uniform(0, 0.85) * w), int(rng.uniform(0, 0.9) * h)
            shade = int(rng.choice([255, 0, int(rng.integers(100, 255))]))
            d.text((tx, ty), _random_text(rng), fill=shade, font=font)
        x = np.asarray(im, dtype=np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


def grey_cdf(img: np.ndarray) -> np.ndarray:
    """Cumulative grey-level distribution of a uint8-valued image at the 256 levels' midpoints
    (what `style_augment` matches against); float32, increasing from ~0 to ~1."""
    h = np.bincount(np.clip(np.round(img), 0, 255).astype(np.int64).ravel(), minlength=256)[:256]
    c = np.cumsum(h).astype(np.float64)
    return ((c - h / 2.0) / max(c[-1], 1.0)).astype(np.float32)


def style_augment(img: np.ndarray, ref_cdf: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Give a film another collection's look (a candidate against source shortcuts, judged on
    photosim2 val renders and the unseen-source folds): its grey levels mapped onto a film of a
    different source (histogram matching, by a random share, so the result lies between the two
    looks), then that collection-like sharpness or softness and grain. On a gray float32 image in
    [0, 255] with `ref_cdf` from `grey_cdf`; deterministic given rng; size unchanged."""
    x = img.astype(np.float32)
    own = grey_cdf(x)
    levels = np.arange(256, dtype=np.float32)
    # level g of this film sits at quantile own[g]; the reference's level at that quantile
    lut = np.interp(own, ref_cdf, levels).astype(np.float32)
    g = np.clip(x, 0, 255)
    lo = np.floor(g).astype(np.int64)
    hi = np.minimum(lo + 1, 255)
    f = g - lo  # keep sub-level detail (decoded films are integral, augmented ones are not)
    matched = lut[lo] * (1 - f) + lut[hi] * f
    a = np.float32(rng.uniform(0.5, 1.0))
    x = x + a * (matched - x)
    r = rng.random()
    if r < 0.35:  # softer scanner / resize chain
        x = _gauss(x, rng.uniform(0.4, 1.5))
    elif r < 0.7:  # crisper: unsharp mask, as some archives' exports carry
        x = x + (x - _gauss(x, rng.uniform(0.6, 2.0))) * np.float32(rng.uniform(0.2, 1.0))
    if rng.random() < 0.4:  # film or detector grain
        x = x + rng.standard_normal(x.shape).astype(np.float32) * np.float32(rng.uniform(1.0, 5.0))
    return np.ascontiguousarray(np.clip(x, 0, 255), dtype=np.float32)
