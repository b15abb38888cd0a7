"""Preprocessing "cxr-area-v1" (and "cxr-eq-v2" = v1's steps 1-2, then `equalise01`, then
(e - mean)/std) - the single Python implementation used by training,
evaluation, calibration and parity export. The Rust side (cxr-edge) implements the same.

1. decode(path) -> 2-D float32 gray image with values in [0, 255]
   * 8-bit gray ("L"): as is
   * 16-bit gray ("I;16*", "I"): value / 257
   * RGB / RGBA (and palette images, which are expanded to RGB(A) first):
     0.299 R + 0.587 G + 0.114 B computed in float32, alpha ignored
   * "LA": the L channel; "1": 0/255
   No EXIF orientation is applied.
2. area_resize(img, S, S): squash (aspect ratio ignored), exact area averaging, separable.
   For an axis of length n resized to m: scale = n / m (float64). Output index i covers the
   source interval [lo, hi) = [i*scale, (i+1)*scale). Source pixel k (k = floor(lo) ..
   min(ceil(hi), n) - 1) gets weight overlap([k, k+1), [lo, hi)) / scale; pixels with zero
   overlap are skipped. Weights are built in float64 (Wy: S x H, Wx: S x W), cast to float32,
   and out = (Wy @ img) @ Wx.T is computed in float32 (vertical pass first).
3. normalise: x = (v / 255 - mean) / std (scalars from the model manifest), float32.
4. tensor NCHW [1, 1, S, S] float32.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image


def gray_from_pil(im: Image.Image) -> np.ndarray:
    """PIL image -> 2-D float32 gray array in [0, 255] (rule 1 above)."""
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode == "L":
        return np.asarray(im, dtype=np.uint8).astype(np.float32)
    if mode == "1":
        return np.asarray(im.convert("L"), dtype=np.uint8).astype(np.float32)
    if mode == "LA":
        return np.asarray(im, dtype=np.uint8)[:, :, 0].astype(np.float32)
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(im).astype(np.float32)
        return a / np.float32(257.0)
    if mode in ("RGB", "RGBA", "RGBX"):
        a = np.asarray(im, dtype=np.uint8)[:, :, :3].astype(np.float32)
        r, g, b = a[:, :, 0], a[:, :, 1], a[:, :, 2]
        return (np.float32(0.299) * r + np.float32(0.587) * g + np.float32(0.114) * b).astype(np.float32)
    # anything else (CMYK, YCbCr, F, ...): go through RGB
    return gray_from_pil(im.convert("RGB"))


def decode(path) -> np.ndarray:
    with Image.open(path) as im:
        im.load()
        return gray_from_pil(im)


def area_weights(n: int, m: int) -> np.ndarray:
    """(m x n) float64 area-averaging matrix (see module docstring)."""
    scale = n / m
    w = np.zeros((m, n), dtype=np.float64)
    for i in range(m):
        lo = i * scale
        hi = (i + 1) * scale
        k0 = int(math.floor(lo))
        k1 = min(int(math.ceil(hi)), n)
        for k in range(k0, k1):
            ov = min(hi, k + 1.0) - max(lo, float(k))
            if ov > 0.0:
                w[i, k] = ov / scale
    return w


_WCACHE: dict = {}


def _w32(n: int, m: int) -> np.ndarray:
    key = (n, m)
    w = _WCACHE.get(key)
    if w is None:
        w = area_weights(n, m).astype(np.float32)
        if len(_WCACHE) < 512:
            _WCACHE[key] = w
    return w


def area_resize(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    img = np.ascontiguousarray(img, dtype=np.float32)
    h, w = img.shape
    wy = _w32(h, out_h)
    wx = _w32(w, out_w)
    return ((wy @ img) @ wx.T).astype(np.float32)


def normalise(resized: np.ndarray, mean: float, std: float) -> np.ndarray:
    return ((resized / np.float32(255.0) - np.float32(mean)) / np.float32(std)).astype(np.float32)


def to_tensor(gray: np.ndarray, size: int, mean: float, std: float) -> np.ndarray:
    """decoded gray [0,255] -> NCHW float32 [1,1,S,S]."""
    r = area_resize(gray, size, size)
    return normalise(r, mean, std)[None, None]


def preprocess_file(path, size: int, mean: float, std: float) -> np.ndarray:
    return to_tensor(decode(path), size, mean, std)


def equalise01(resized: np.ndarray) -> np.ndarray:
    """"cxr-eq-v2" step 3: rank-based histogram equalisation of the resized image.

    Each resized value is first put on a grid of 1/16 grey level, q = floor(16 v + 0.5) (exact in
    float32 up to the rounding of the addition, identical in Rust), so that values that differ
    only by float rounding of the resize tie exactly; without the grid, a last-bit difference
    between numpy's and Rust's sums could move a pixel past many near-equal neighbours. Each pixel
    then becomes the mean rank of its q among the n pixels, scaled to [0, 1]:
    (first + last index of q in the sorted image) / (2 (n - 1)), computed exactly in float64
    (integers over an integer) and rounded once to float32. The result depends only on the order
    of the values, not on a collection's brightness, contrast, gamma or bit depth: every image
    leaves with the same (uniform) histogram. Ties share one value, so flat borders and
    saturated areas stay flat. n = 1 gives 0.5."""
    v = np.ascontiguousarray(resized, dtype=np.float32).ravel()
    n = v.size
    if n < 2:
        return np.full(resized.shape, 0.5, dtype=np.float32)
    q = np.floor(v * np.float32(16.0) + np.float32(0.5)).astype(np.float32)
    order = np.sort(q)
    lo = np.searchsorted(order, q, side="left")
    hi = np.searchsorted(order, q, side="right") - 1
    r = (lo + hi).astype(np.float64) / float(2 * (n - 1))
    return r.astype(np.float32).reshape(resized.shape)


def stretch01(resized: np.ndarray) -> np.ndarray:
    """"cxr-pct-v2" step 3 (fold experiments only: the Rust side does not implement it, so a model
    trained with it cannot be shipped until it does): a linear stretch between the image's own
    1st and 99th percentile, clipped to [0, 1]. Milder than `equalise01`: it removes a
    collection's brightness and contrast but keeps the shape of its histogram (gamma stays).
    Values are put on the same 1/16 grey grid as `equalise01` first; the percentiles are the
    sorted grid values at index k = (n - 1) // 100 and n - 1 - k. A flat image gives 0.5."""
    v = np.ascontiguousarray(resized, dtype=np.float32)
    q = np.floor(v * np.float32(16.0) + np.float32(0.5)).astype(np.float32)
    order = np.sort(q.ravel())
    k = (order.size - 1) // 100
    lo, hi = order[k], order[order.size - 1 - k]
    if hi <= lo:
        return np.full(v.shape, 0.5, dtype=np.float32)
    return np.clip((q - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


PREPROCESS_IDS = ("cxr-area-v1", "cxr-eq-v2", "cxr-pct-v2")
# The ones the device implements (src/model/preprocess.rs, `Preprocess::IDS`); cxr-pct-v2 was an
# experiment (the card) and never reached Rust.
DEVICE_PREPROCESS_IDS = ("cxr-area-v1", "cxr-eq-v2")


def finish(preprocess_id: str, resized: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Resized gray (S x S, values in [0, 255]) -> normalised 2-D float32 plane.
    cxr-area-v1: (v/255 - mean)/std. cxr-eq-v2: (equalise01(v) - mean)/std (scale-free, so the
    /255 step is not needed)."""
    if preprocess_id == "cxr-area-v1":
        return normalise(resized, mean, std)
    if preprocess_id == "cxr-eq-v2":
        return ((equalise01(resized) - np.float32(mean)) / np.float32(std)).astype(np.float32)
    if preprocess_id == "cxr-pct-v2":
        return ((stretch01(resized) - np.float32(mean)) / np.float32(std)).astype(np.float32)
    raise ValueError(f"unknown preprocessing id {preprocess_id!r}")


def tensor_for(preprocess_id: str, gray: np.ndarray, size: int, mean: float, std: float) -> np.ndarray:
    """Decoded gray [0,255] -> NCHW tensor in the named preprocessing (the id a checkpoint's
    meta or a model manifest records)."""
    return finish(preprocess_id, area_resize(gray, size, size), mean, std)[None, None]
